#pragma once
// ONNX ModelProto -> Graph. Faithful: the checker and ONNX shape inference run first,
// external data is read, Constant nodes become constant values. Each op's kernel factory
// maps its own opset versions; the importer does not rewrite operators.
#include <memory>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/onnx_fwd.h"

namespace onnxtrain::graph {

struct ImportOptions {
  bool run_checker = true;
  bool infer_shapes = true;
  std::string model_dir;   // resolves external data
  std::string model_path;  // for error messages and the file-based checker
};

std::unique_ptr<Graph> import_graph(const onnx::ModelProto& model, const ImportOptions& options);

// Parsers for the three front doors; errors name the source.
void load_model_file(const std::string& path, onnx::ModelProto& model);
void load_model_bytes(const void* data, size_t size, onnx::ModelProto& model);
void load_model_text(const std::string& text, onnx::ModelProto& model);

// Ops without a kernel: op type -> node names. Empty when everything can run.
struct MissingOp {
  std::string domain, op_type;
  int opset = 0;
  bool other_versions_known = false;
  std::vector<std::string> nodes;
};
std::vector<MissingOp> find_missing_kernels(const Graph& graph);
// Throws UnsupportedOp listing every missing op with its nodes and count.
void require_kernels(const Graph& graph, const std::string& source);

}  // namespace onnxtrain::graph
