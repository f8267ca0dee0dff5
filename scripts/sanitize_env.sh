# Sourced by scripts/sanitize.sh (and usable by hand before running an ASan build's tests):
# a UBSan finding stops the process with a stack (the build has -fno-sanitize-recover), a
# leak fails the process at exit like any ASan error. Leak suppressions: third-party
# libraries only, each with its reason, in scripts/lsan_suppressions.txt.
# verify_asan_link_order=0: the fault-injection tests preload their write()-failing shim into
# the CLI processes they start; ASan refuses any preload ahead of its runtime, although the
# runtime is linked into those binaries and is loaded with them.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:strict_string_checks=1:check_initialization_order=1:verify_asan_link_order=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/lsan_suppressions.txt:print_suppressions=0}
