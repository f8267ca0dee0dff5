#pragma once
// One builder for single-node test models and the helpers that run them: the ONNX text
// header, a NodeCase (one node, typed inputs and outputs) rendered as model text, running
// a model text on InferenceSession, and the error message a run throws. Gradient checks
// put NodeCase::text() into GradCase::model_text (gradcheck.h).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "onnxtrain/tensor.h"

namespace onnxtrain::test {

// "<ir_version: 8, opset_import: ["" : opset, <domains>]>" followed by a newline; `domains`
// lists further imports ("ai.onnxtrain" : 1 is `{{"ai.onnxtrain", 1}}`).
std::string model_header(int opset, const std::map<std::string, int>& domains = {});

// A model of one graph with several nodes: g (<inputs>) => (<outputs>) { <body> }.
std::string graph_model(const std::string& body, const std::string& inputs, const std::string& outputs,
                        int opset = 17);

// A model with one node: g (<inputs>) => (<outputs>) { <outputs> = <op> <attrs> (<args>) }.
struct NodeCase {
  std::string op;                    // op type, with its domain for other domains ("ai.onnxtrain.ConvGrad")
  std::string attrs;                 // ONNX text attribute list without the brackets ("axis = 0")
  // Typed graph inputs ("float[3, 2] X") that the node reads in order, and typed graph outputs
  // ("float[N, 2] Y"); an empty entry leaves that node position out (absent optional ones).
  std::vector<std::string> inputs;
  std::vector<std::string> outputs;
  int opset = 17;
  std::map<std::string, int> domains;  // further opset imports

  std::string text() const;
};

// Runs a model text once on InferenceSession.
std::map<std::string, Tensor> run_model(const std::string& text, const std::map<std::string, Tensor>& feeds);
std::map<std::string, Tensor> run_node_case(const NodeCase& c, const std::map<std::string, Tensor>& feeds);

// The message of the onnxtrain::Error that loading or running the model throws; empty when
// it runs (so EXPECT_CONTAINS on it fails with the message shown).
std::string run_error(const std::string& text, const std::map<std::string, Tensor>& feeds);

// Expects loading or running the model to throw an onnxtrain::Error mentioning `needle`.
void expect_error(const std::string& text, const std::map<std::string, Tensor>& feeds, const std::string& needle);

}  // namespace onnxtrain::test

// Expects `part` to occur in `text`, showing `text` otherwise.
#define EXPECT_CONTAINS(text, part) \
  EXPECT_NE(std::string(text).find(part), std::string::npos) << "message: " << (text)
