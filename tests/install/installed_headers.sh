#!/usr/bin/env bash
# Compiles every installed onnxtrain header alone, with only the install's include dir, and
# fails when one is not self-contained or pulls in a header of onnxtrain's dependencies
# (ONNX, protobuf, oneDNN, spdlog, fmt, ...): users need the C++ and C libraries only.
#   installed_headers.sh PREFIX
set -euo pipefail
prefix=$(cd "$1" && pwd)
include="$prefix/include"
# Where a header may come from: the install, the C++ standard library, libc and the kernel.
allowed="^($include/|/usr/include/c\+\+/|/usr/include/x86_64-linux-gnu/|/usr/lib/gcc/|/usr/include/(linux|asm-generic|sys|bits)/|/usr/include/[^/]+\.h$)"
status=0
count=0
for header in "$include"/onnxtrain/*.h; do
  name=onnxtrain/$(basename "$header")
  count=$((count + 1))
  # -H lists every header opened ("... path" on stderr).
  if ! trace=$(echo "#include <$name>" | ${CXX:-c++} -std=c++20 -fsyntax-only -H -I "$include" -x c++ - 2>&1); then
    echo "FAIL $name does not compile alone:"; echo "$trace" | grep -v '^\.' | head -20
    status=1
    continue
  fi
  foreign=$(echo "$trace" | sed -n 's/^\.\+ //p' | xargs -r realpath -s | grep -Ev "$allowed" || true)
  if [[ -n "$foreign" ]]; then
    echo "FAIL $name includes headers from outside the install:"; echo "$foreign" | sort -u | head -10
    status=1
  fi
done
((count > 0)) || { echo "no headers under $include/onnxtrain"; exit 1; }
((status == 0)) && echo "ok: $count installed headers compile alone with -I $include only"
exit $status
