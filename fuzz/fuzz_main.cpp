// The libFuzzer entry of one target, chosen at compile time (fuzz/CMakeLists.txt).
#include <cstddef>
#include <cstdint>

#include "fuzz/fuzz_inputs.h"
#include "onnxtrain/log.h"

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  onnxtrain::set_log_level(onnxtrain::LogLevel::Off);
  onnxtrain::fuzz::limit_memory();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto& target = onnxtrain::fuzz::target(ONNXTRAIN_FUZZ_TARGET);
  target.run({reinterpret_cast<const char*>(data), size});
  return 0;
}
