#!/usr/bin/env bash
# Runs one libFuzzer target for SECONDS on its committed seeds plus earlier findings, with
# the limits the reliability issue asks for; prints the exec count. A crash, timeout or
# out-of-memory leaves the input in WORK/ and fails. SEED fixes libFuzzer's random seed, so a
# run repeats the same search (as far as its time allows); without it each run searches anew.
# Usage: fuzz_one.sh BINARY TARGET SECONDS SOURCE_DIR WORK_DIR [SEED]
set -euo pipefail
binary=$1 target=$2 seconds=$3 src=$4 work=$5 seed=${6:-}
mkdir -p "$work/corpus" "$work/artifacts"
seeds=()
for d in "$src/fuzz/corpus/$target" "$src/tests/data/fuzz_regressions/$target"; do
  [[ -d $d ]] && seeds+=("$d")
done
log=$work/fuzz.log
seed_arg=()
[[ -n $seed ]] && seed_arg=(-seed="$seed")
set +e
"$binary" "$work/corpus" "${seeds[@]}" "${seed_arg[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 \
  -timeout=10 -max_len=65536 -print_final_stats=1 -artifact_prefix="$work/artifacts/" >"$log" 2>&1
status=$?
set -e
execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo '?')
echo "fuzz $target: ${seconds}s, seed ${seed:-random}, $execs execs, exit $status"
if [[ $status -ne 0 ]]; then
  tail -n 60 "$log"
  ls "$work/artifacts"
  exit 1
fi
