#!/usr/bin/env bash
# Builds the fuzz targets (clang, ASan+UBSan+libFuzzer) in build-fuzz/ and runs each for
# SECONDS (default 60), one after another at low priority, printing exec counts per target.
# Long campaigns: scripts/fuzz.sh 3600. New crashes are left under
# build-fuzz/fuzz/work/<target>/artifacts; copy each into tests/data/fuzz_regressions/<target>/
# once fixed, where the default build's unit tests replay it.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
jobs=${FUZZ_BUILD_JOBS:-2}
# -O1 with line tables: quick to build, still fast to fuzz, symbolized reports. (CI runs the
# same targets for 60 s each in scripts/sanitize.sh's build.)
export ONNXTRAIN_WITH_CLANG=1
./scripts/install-deps.sh
cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=None "-DCMAKE_CXX_FLAGS=-O1 -gline-tables-only" -DCMAKE_CXX_COMPILER=clang++ \
  -DONNXTRAIN_FUZZ=ON -DONNXTRAIN_BUILD_TESTS=OFF -DONNXTRAIN_PCH=OFF >/dev/null
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(model_import arrays csv image config_toml checkpoint)
cmake --build build-fuzz -j"$jobs" --target "${targets[@]/#/fuzz_}"
failed=0
for t in "${targets[@]}"; do
  OMP_NUM_THREADS=1 nice -n 10 bash scripts/fuzz_one.sh "build-fuzz/fuzz/fuzz_$t" "$t" "$seconds" "$PWD" \
    "build-fuzz/fuzz/work/$t" || failed=1
done
exit $failed
