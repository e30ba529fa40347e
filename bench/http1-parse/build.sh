#!/usr/bin/env bash
# Builds the HTTP/1.1 parse micro-benchmark into OUT_DIR (default: .build-release/http1-parse-bench).
# HTTP1 is compiled as a separate module with the package's hot-path flags
# (-O, whole-module, -enforce-exclusivity=unchecked), then the benchmark links it.
# Not a SwiftPM target: a new target would have to be added to DESIGN.md's
# layer table and Tests/LayeringTests, which the benchmark suite does not own.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
OUT_DIR=${1:-$ROOT/.build-release/http1-parse-bench}
mkdir -p "$OUT_DIR"
FLAGS=(-O -wmo -enforce-exclusivity=unchecked -g)
swiftc "${FLAGS[@]}" -parse-as-library -module-name HTTP1 -emit-module -emit-module-path "$OUT_DIR/HTTP1.swiftmodule" \
    -emit-library -static -o "$OUT_DIR/libHTTP1.a" "$ROOT"/Sources/HTTP1/*.swift
swiftc "${FLAGS[@]}" -module-name http1_parse_bench -I "$OUT_DIR" -L "$OUT_DIR" -lHTTP1 \
    -o "$OUT_DIR/http1-parse-bench" "$ROOT/bench/http1-parse/main.swift"
echo "$OUT_DIR/http1-parse-bench"
