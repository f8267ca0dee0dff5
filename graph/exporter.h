#pragma once
// Graph -> ONNX ModelProto, and "the original model with new initializer values" (what a
// trained model is exported as: everything the user had survives untouched). Files are
// src/'s business (save_model_file in src/model_file.h).
#include <map>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "graph/onnx_fwd.h"

namespace onnxtrain::graph {

// Writes the whole graph as a fresh model (IR version 8).
void export_graph(const Graph& graph, onnx::ModelProto& model);

// Replaces the data of the named initializers in place (dtype and shape must match).
// Throws ModelError naming any name that is not an initializer of the model.
void replace_initializers(onnx::ModelProto& model, const std::map<std::string, Tensor>& values);

// Makes `outputs` the model's graph outputs (each a graph output already or any value of
// `graph`, the model's IR, which supplies its type) and drops the nodes, inputs and
// initializers they do not need. Throws ModelError naming an unknown value.
void select_outputs(onnx::ModelProto& model, const Graph& graph, const std::vector<std::string>& outputs);

}  // namespace onnxtrain::graph
