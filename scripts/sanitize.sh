#!/usr/bin/env bash
# Builds onnxtrain with clang, AddressSanitizer + UndefinedBehaviorSanitizer (LeakSanitizer
# comes with ASan on Linux) and the libFuzzer targets into build-clang-asan/ (or $BUILD_DIR),
# and runs the whole suite there but the install label: the `fuzz` label (each fuzz target
# for ONNXTRAIN_FUZZ_SECONDS, 60 by default, from its seed corpus) runs with the rest, so CI
# keeps the fuzz targets alive. An ASan-built package only links into applications built with
# -fsanitize=address, which the install tests' examples, built as a plain application would
# be, are not; the README's test command checks the package uninstrumented. Extra arguments
# go to ctest, e.g. -L unit.
set -euo pipefail
cd "$(dirname "$0")/.."
export BUILD_DIR=${BUILD_DIR:-build-clang-asan}
export ONNXTRAIN_WITH_CLANG=1
./scripts/build.sh -DCMAKE_CXX_COMPILER=clang++ -DONNXTRAIN_SANITIZE=ON -DONNXTRAIN_FUZZ=ON
source scripts/sanitize_env.sh
cd "$BUILD_DIR"
ctest --output-on-failure -j"$(nproc)" -LE '^install$' "$@"
