#pragma once
// Runs one node (a tests/support NodeCase on InferenceSession) on float32
// inputs and compares its outputs with a reference::Array within a tolerance derived from
// the float32 accumulation length.
#include <initializer_list>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "onnxtrain/onnxtrain.h"
#include "ops/reference/array.h"

namespace onnxtrain::test {

using reference::Array;
using reference::Dims;

// Uniform values in [lo, hi], rounded to float so the kernel and the reference see the
// same numbers.
Array random_array(const Dims& shape, std::mt19937& rng, double lo = -1.0, double hi = 1.0);
Tensor to_float_tensor(const Array& a);
// One of `values`, uniformly (random configurations).
int64_t pick(std::mt19937& rng, std::initializer_list<int64_t> values);
Array to_array(const Tensor& t);

// "[1,2,3]"
std::string ints(const std::vector<int64_t>& v);

struct NodeInput {
  std::string name;
  Array value;  // float32 input; an empty name leaves the input position out
  bool int32 = false;  // an int32 input instead (RNN sequence_lens)
};

// The outputs of one node `outputs = op <attrs> (inputs)` run by an InferenceSession: inputs
// of any dtype (an empty name leaves the position out), outputs of type `out_type` with
// the given ranks and symbolic dims ("" skips an output position).
std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs,
                                       const std::vector<std::pair<std::string, Tensor>>& inputs,
                                       const std::vector<std::pair<std::string, size_t>>& outputs,
                                       const std::string& out_type = "float");
// The same with one output "Y" of rank `out_rank`.
std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs,
                                       const std::vector<std::pair<std::string, Tensor>>& inputs, size_t out_rank,
                                       const std::string& out_type = "float");

// Uniform float values in [-1, 1].
Tensor random_float_tensor(const Shape& shape, std::mt19937& rng);

// The same on reference arrays: `Y... = op <attrs> (inputs)`; `op` may carry the domain
// ("ai.onnxtrain.ConvGrad"); outputs are float tensors of the given ranks ("" skips one).
std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs, const std::vector<NodeInput>& inputs,
                                       const std::vector<std::pair<std::string, size_t>>& outputs);

// Tolerance for a value that float32 accumulates from `length` terms of magnitude up to
// `scale`: rounding errors of a running sum grow like a random walk, ~u*sqrt(length) per
// partial sum of size ~sqrt(length)*scale, i.e. ~u*length*scale (u = 2^-24). The factor 8
// leaves room for blocked/reordered summation; a wrong index or a missing term is off by
// ~scale, orders of magnitude more.
double accumulation_tolerance(int64_t length, double scale = 1.0);

// Empty when every |actual - expected| <= tol (and the shapes agree); otherwise the worst
// elements, for the failure message next to the configuration.
std::string compare(const Tensor& actual, const Array& expected, double tol);

}  // namespace onnxtrain::test
