#!/usr/bin/env bash
# ThreadSanitizer on sessions trained concurrently (two sessions on two threads, one OpenMP
# thread each, so libgomp's uninstrumented pool stays out of it): builds only that test into
# build-tsan/ (or $BUILD_DIR) and runs it. Extra arguments go to the test binary.
set -euo pipefail
cd "$(dirname "$0")/.."
source_dir=$PWD
build_dir=${BUILD_DIR:-build-tsan}
./scripts/install-deps.sh
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# No MPI: the test runs in one process.
cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DONNXTRAIN_SANITIZE=thread \
  -DONNXTRAIN_MPI=OFF >/dev/null
cmake --build "$build_dir" -j"${JOBS:-$(nproc)}" --target tsan_session_tests
# No suppressions: with one OpenMP thread per session neither libgomp nor oneDNN reports.
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ${TSAN_OPTIONS:-}"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE ONNXTRAIN_SOURCE_DIR=$source_dir
"$build_dir/tests/tsan_session_tests" "$@"
