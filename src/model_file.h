#pragma once
// Writing ModelProtos (built by graph/exporter) to files; defined in src/model.cpp.
#include <string>

#include "graph/onnx_fwd.h"

namespace onnxtrain {

// Serialises `model` and writes it with write_file_atomically. Throws ModelError when the
// model cannot be serialised (over 2 GB), BackendError when the file cannot be written.
void save_model_file(const onnx::ModelProto& model, const std::string& path);

}  // namespace onnxtrain
