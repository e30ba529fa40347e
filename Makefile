# Postern: the two commands of the README, plus benchmarks and fuzzing.
SWIFT ?= swift
FUZZ_SECONDS ?= 60

.PHONY: run test build static deps fuzz bench clean image image-test

## Install what is missing, build in release mode and run the example in config/.
run: deps
	$(SWIFT) build -c release
	scripts/run-example

## Install what is missing and run the whole test suite (unit, end-to-end, layering, fuzz).
## The static release binary (--static-swift-stdlib, the image's) is built first so that
## Tests/DeploymentTests/LinkedLibrariesTests checks what it loads (about 5 minutes on 2 cores).
test: deps static
	$(SWIFT) build --build-tests
	$(SWIFT) test
	scripts/fuzz-http1 $(FUZZ_SECONDS)

## The release binary with the Swift runtime linked in: it loads only libc, libm, the C++
## runtime, OpenSSL, nghttp2, RE2 and libyaml (docs/deployment.md).
static: deps
	$(SWIFT) build -c release --static-swift-stdlib --product postern --scratch-path .build-static

build: deps
	$(SWIFT) build -c release

deps:
	scripts/install-deps

## The container image, built offline (no daemon, no registry): an OCI layout and
## a docker-archive tarball in .build-image/out (see docs/deployment.md).
image: deps
	scripts/build-image

## Runs the image's binary from the unpacked image (chroot, uid 65532, read-only
## root): serves, /readyz, drains on SIGTERM. Not part of `test`: it needs root
## and a mount namespace (`test` checks the static binary's libraries, not the image).
image-test: image
	scripts/test-image

## libFuzzer on the HTTP/1.1 codec for FUZZ_SECONDS.
fuzz: deps
	scripts/fuzz-http1 $(FUZZ_SECONDS)

## The benchmark suite: Postern vs nginx, HAProxy, h2o, Envoy (see bench/README.md).
bench: deps
	bench/run

clean:
	rm -rf .build .build-*
