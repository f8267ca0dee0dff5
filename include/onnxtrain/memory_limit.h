#pragma once
// The most memory one tensor read from a file (model initializer, external data, .npy/.npz
// member, checkpoint entry) may claim. A corrupt or hostile header then fails with a message
// naming the tensor and its size instead of exhausting the machine.
#include <cstdint>
#include <string>

namespace onnxtrain {

// ONNXTRAIN_MEMORY_LIMIT (bytes, optionally with a K, M, G or T suffix, powers of 1024) when
// set, else the machine's physical RAM. set_memory_limit overrides both; 0 restores them.
uint64_t memory_limit();
void set_memory_limit(uint64_t bytes);

// "<what> needs N bytes (H), more than the memory limit of ..." when `bytes` exceeds the
// limit; empty otherwise. Callers throw it as their own error kind (ModelError, DataError).
std::string memory_limit_problem(uint64_t bytes, const std::string& what);

}  // namespace onnxtrain
