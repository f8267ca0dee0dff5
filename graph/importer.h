#pragma once
// ONNX ModelProto -> Graph. Faithful: the checker and ONNX shape inference run first,
// external data is read, Constant nodes become constant values. Each op's kernel factory
// maps its own opset versions; the importer does not rewrite operators. It neither asks the
// operator registry nor runs passes: Model's loaders (src/model.cpp) expand Gradient ops,
// validate training_info and leave the kernel check to the executor.
#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/onnx_fwd.h"

namespace onnxtrain::graph {

struct ImportOptions {
  bool run_checker = true;
  bool infer_shapes = true;
  std::string model_dir;   // resolves external data; empty (from memory) refuses it
  std::string model_path;  // for error messages and the file-based checker
  // Both fields for a model read from the file `path`.
  static ImportOptions for_file(const std::string& path);
};

std::unique_ptr<Graph> import_graph(const onnx::ModelProto& model, const ImportOptions& options);

// Parsers for the three front doors; errors name the source.
void load_model_file(const std::string& path, onnx::ModelProto& model);
void load_model_bytes(const void* data, size_t size, onnx::ModelProto& model);
void load_model_text(const std::string& text, onnx::ModelProto& model);

}  // namespace onnxtrain::graph
