#pragma once
// One function per fuzz target: feeds arbitrary bytes to a reader through its public entry
// point. Malformed input must end in an onnxtrain::Error (or CLI11's parse error for config
// files); anything else — a crash, a sanitizer report, another exception, a hang, a huge
// allocation — is a bug. The libFuzzer drivers (fuzz_main.cpp) and the regression replay in
// the default test build (tests/unit/fuzz_regression_test.cpp) call the same functions.
#include <string_view>
#include <vector>

namespace onnxtrain::fuzz {

struct Target {
  const char* name;  // also the folder of its seeds (fuzz/corpus/<name>) and regressions
  void (*run)(std::string_view bytes);
};

const std::vector<Target>& targets();
const Target& target(std::string_view name);

// Lowers the memory limit (onnxtrain/memory_limit.h) below libFuzzer's -malloc_limit_mb, so
// a header that claims too much is refused by our check rather than reported by libFuzzer.
void limit_memory();

}  // namespace onnxtrain::fuzz
