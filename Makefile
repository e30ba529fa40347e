# Postern: the two commands of the README, plus benchmarks and fuzzing.
SWIFT ?= swift
FUZZ_SECONDS ?= 60

.PHONY: run test build deps fuzz bench clean

## Install what is missing, build in release mode and run the example in config/.
run: deps
	$(SWIFT) build -c release
	scripts/run-example

## Install what is missing and run the whole test suite (unit, end-to-end, layering, fuzz).
test: deps
	$(SWIFT) build --build-tests
	$(SWIFT) test
	scripts/fuzz-http1 $(FUZZ_SECONDS)

build: deps
	$(SWIFT) build -c release

deps:
	scripts/install-deps

## libFuzzer on the HTTP/1.1 codec for FUZZ_SECONDS.
fuzz: deps
	scripts/fuzz-http1 $(FUZZ_SECONDS)

## The benchmark suite: Postern vs nginx, HAProxy, h2o, Envoy (see bench/README.md).
bench: deps
	bench/run

clean:
	rm -rf .build .build-*
