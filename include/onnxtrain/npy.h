#pragma once
// NumPy .npy and .npz files (stored and deflate-compressed), read and written natively.
#include <map>
#include <string>

#include "onnxtrain/tensor.h"

namespace onnxtrain {

Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const Tensor& tensor);
// Arrays by name (the ".npy" suffix of each member is dropped).
std::map<std::string, Tensor> read_npz(const std::string& path);
void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays, bool compress = true);
// Reads either format: an .npy yields one array named after the file's stem.
std::map<std::string, Tensor> read_arrays(const std::string& path);

// The serialized forms, for callers that hold the bytes.
Tensor parse_npy(const std::string& bytes, const std::string& what = "npy data");
std::string serialize_npy(const Tensor& tensor);

}  // namespace onnxtrain
