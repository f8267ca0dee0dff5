#!/usr/bin/env bash
# Installs the Debian 12 packages onnxtrain needs to build and test. Idempotent:
# runs apt-get update at most once and only when something is missing.
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libonnx-dev libprotobuf-dev protobuf-compiler
  libdnnl-dev ocl-icd-opencl-dev opencl-headers libspdlog-dev libfmt-dev libgtest-dev libgmock-dev
  libcli11-dev nlohmann-json3-dev libstb-dev zlib1g-dev
  libyaml-cpp-dev  # detection datasets' data.yaml
  libopenmpi-dev openmpi-bin  # distributed training and its mpi tests (optional at configure time)
  libonnx-testdata
  python3-opencv python3-onnx python3-numpy  # tests/interop/opencv_check.py
)
# The sanitizer and fuzz builds (scripts/sanitize.sh, scripts/fuzz.sh): clang with its
# sanitizer and libFuzzer runtimes, and its OpenMP runtime.
if [[ "${ONNXTRAIN_WITH_CLANG:-0}" == 1 ]]; then
  packages+=(clang libclang-rt-14-dev libomp-dev)
fi
# Only for regenerating goldens and benchmarks (models/, tools/bench); tests never need them.
if [[ "${ONNXTRAIN_WITH_TORCH:-0}" == 1 ]]; then
  packages+=(python3-torch python3-torchvision python3-onnx python3-numpy python3-sklearn)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  exit 0
fi
sudo_cmd=()
[[ $(id -u) == 0 ]] || sudo_cmd=(sudo)
echo "Installing: ${missing[*]}"
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
