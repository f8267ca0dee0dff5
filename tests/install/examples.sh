#!/usr/bin/env bash
# Builds each examples/<name> as a project of its own against the installed package
# (find_package(onnxtrain) with CMAKE_PREFIX_PATH, the way an application would), runs it
# and checks its output; also the static library and pkg-config.
#   examples.sh SOURCE_DIR PREFIX WORK_DIR
set -euo pipefail
source_dir=$(cd "$1" && pwd)
prefix=$(cd "$2" && pwd)
work=$3
rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)

build() {  # build NAME BUILD_SUBDIR [cmake args...]
  local name=$1 dir=$work/$2
  shift 2
  cmake -S "$source_dir/examples/$name" -B "$dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release \
        -DCMAKE_PREFIX_PATH="$prefix" "$@" >"$dir.configure.log" 2>&1 \
    || { cat "$dir.configure.log"; exit 1; }
  cmake --build "$dir" -j2 >"$dir.build.log" 2>&1 || { cat "$dir.build.log"; exit 1; }
}

expect() {  # expect LOG PATTERN: the example's output must contain PATTERN
  grep -Eq "$2" "$1" || { echo "FAIL: $1 lacks /$2/:"; cat "$1"; exit 1; }
}

run() {  # run LOG COMMAND...: runs an example, keeping its output
  local log=$1
  shift
  "$@" >"$log" 2>&1 || { echo "FAIL (exit $?): $*"; cat "$log"; exit 1; }
  cat "$log"
}

digits=$source_dir/models/digits

echo "== embedded_mlp: ONNX text in the source, data in memory, trained model saved"
build embedded_mlp embedded_mlp
run "$work/embedded_mlp.log" "$work/embedded_mlp/embedded_mlp" "$work/mlp_trained.onnx"
expect "$work/embedded_mlp.log" '^accuracy (0\.9|1\.0)'
test -s "$work/mlp_trained.onnx"

echo "== inference: the trained file, shared library"
build inference inference
run "$work/inference.log" "$work/inference/inference" "$work/mlp_trained.onnx"
expect "$work/inference.log" 'point \(-1.00, -1.73\) -> class 2'

echo "== inference: static library (dependencies found by the package)"
build inference inference_static -DLINK_STATIC=ON
if readelf -d "$work/inference_static/inference" | grep -q 'libonnxtrain'; then
  echo "FAIL: the static build links libonnxtrain.so"; exit 1
fi
run "$work/inference_static.log" "$work/inference_static/inference" "$work/mlp_trained.onnx"
expect "$work/inference_static.log" 'point \(2.00, 0.00\) -> class 0'

echo "== inference: pkg-config"
PKG_CONFIG_PATH=$(dirname "$(find "$prefix" -name onnxtrain.pc | head -1)") \
  bash -c "${CXX:-c++} -O1 '$source_dir/examples/inference/main.cpp' -o '$work/inference_pc' \$(pkg-config --cflags --libs onnxtrain) -Wl,-rpath,\$(pkg-config --variable=libdir onnxtrain)"
run "$work/inference_pc.log" "$work/inference_pc" "$work/mlp_trained.onnx"
expect "$work/inference_pc.log" 'point \(-1.00, 1.73\) -> class 1'

echo "== fine_tune: Trainer on a model file, stop after one epoch, resume from the checkpoint"
build fine_tune fine_tune
run "$work/fine_tune.log" "$work/fine_tune/fine_tune" "$digits/digits_cnn.onnx" "$digits/train.npz" "$work/fine_tune_run"
expect "$work/fine_tune.log" '^stopped at step [0-9]+'
expect "$work/fine_tune.log" '^epoch 3/3'
expect "$work/fine_tune.log" '^resumed and completed at step'
test -s "$work/fine_tune_run/best.onnx"

echo "== from_artifacts: onnxtrain artifacts, then a session from them, continued and exported"
"$prefix/bin/onnxtrain" artifacts "$digits/digits_cnn.onnx" --loss cross_entropy --optimizer adam --lr 1e-3 \
  --out-dir "$work/artifacts" -q
build from_artifacts from_artifacts
run "$work/from_artifacts.log" "$work/from_artifacts/from_artifacts" "$work/artifacts" "$digits/train.npz" "$work/continued"
expect "$work/from_artifacts.log" 'training_model.onnx \(step 40\)'
test -s "$work/continued/model.onnx"

echo "== the package refuses an incompatible version request"
mkdir -p "$work/version"
cat >"$work/version/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.25)
project(version_check LANGUAGES CXX)
find_package(onnxtrain ${WANT} REQUIRED)
CMAKE
want_ok=$(sed -n 's/^Version: //p' "$(find "$prefix" -name onnxtrain.pc | head -1)")
cmake -S "$work/version" -B "$work/version/ok" -DWANT="$want_ok" -DCMAKE_PREFIX_PATH="$prefix" >"$work/version_ok.log" 2>&1 \
  || { echo "FAIL: find_package(onnxtrain $want_ok)"; cat "$work/version_ok.log"; exit 1; }
# 0.x: the next minor version is not compatible (SameMinorVersion).
IFS=. read -r major minor _ <<<"$want_ok"
want_bad=$major.$((minor + 1))
if cmake -S "$work/version" -B "$work/version/bad" -DWANT="$want_bad" -DCMAKE_PREFIX_PATH="$prefix" >"$work/version_bad.log" 2>&1; then
  echo "FAIL: find_package(onnxtrain $want_bad) accepted version $want_ok"; exit 1
fi
expect "$work/version_bad.log" "compatible with requested version \"$want_bad\""

echo "ok: every example built against $prefix and ran"
