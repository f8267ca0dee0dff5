#include "tests/reference/reference_support.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "tests/support/node_case.h"

namespace onnxtrain::test {

Array random_array(const Dims& shape, std::mt19937& rng, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  Array a(shape);
  for (double& v : a.data) v = static_cast<float>(dist(rng));
  return a;
}

int64_t pick(std::mt19937& rng, std::initializer_list<int64_t> values) {
  return values.begin()[std::uniform_int_distribution<size_t>(0, values.size() - 1)(rng)];
}

Tensor to_float_tensor(const Array& a) { return Tensor::from_vector<float>(a.shape, std::vector<float>(a.data.begin(), a.data.end())); }

Array to_array(const Tensor& t) { return Array(t.shape(), t.as_double()); }

std::string ints(const std::vector<int64_t>& v) {
  std::string r = "[";
  for (size_t i = 0; i < v.size(); ++i) r += (i ? "," : "") + std::to_string(v[i]);
  return r + "]";
}

namespace {

// "float[2,3] X" for a feed; "float[]" would mean unknown rank, so a scalar has no brackets.
std::string input_declaration(const std::string& name, const Tensor& t) {
  const DType dt = t.dtype();
  const std::string type = dt == DType::Float    ? "float"
                           : dt == DType::Double ? "double"
                           : dt == DType::Int32  ? "int32"
                                                 : "int64";
  return type + (t.rank() ? ints(t.shape()) : "") + " " + name;
}

// "float[Y_0,Y_1] Y": an output of known rank and symbolic dims.
std::string output_declaration(const std::string& name, size_t rank, const std::string& type) {
  std::string dims;
  for (size_t d = 0; d < rank; ++d) dims += (d ? "," : "[") + name + "_" + std::to_string(d);
  return type + dims + (rank ? "]" : "") + " " + name;
}

}  // namespace

std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs,
                                       const std::vector<std::pair<std::string, Tensor>>& inputs,
                                       const std::vector<std::pair<std::string, size_t>>& outputs,
                                       const std::string& out_type) {
  NodeCase node{op, attrs, {}, {}, 17, {{"ai.onnxtrain", 1}}};
  std::map<std::string, Tensor> feeds;
  for (const auto& [name, t] : inputs) {
    node.inputs.push_back(name.empty() ? "" : input_declaration(name, t));
    if (!name.empty()) feeds[name] = t;
  }
  for (const auto& [name, rank] : outputs)
    node.outputs.push_back(name.empty() ? "" : output_declaration(name, rank, out_type));
  return run_node_case(node, feeds);
}

std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs,
                                       const std::vector<std::pair<std::string, Tensor>>& inputs, size_t out_rank,
                                       const std::string& out_type) {
  return run_node(op, attrs, inputs, {{"Y", out_rank}}, out_type);
}

std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs, const std::vector<NodeInput>& inputs,
                                       const std::vector<std::pair<std::string, size_t>>& outputs) {
  std::vector<std::pair<std::string, Tensor>> tensors;
  for (const NodeInput& in : inputs) {
    const Array& a = in.value;
    tensors.emplace_back(in.name, in.name.empty() ? Tensor()
                                  : in.int32      ? Tensor::from_vector<int32_t>(a.shape, std::vector<int32_t>(a.data.begin(), a.data.end()))
                                                  : to_float_tensor(a));
  }
  return run_node(op, attrs, tensors, outputs);
}

Tensor random_float_tensor(const Shape& shape, std::mt19937& rng) { return to_float_tensor(random_array(shape, rng)); }

double accumulation_tolerance(int64_t length, double scale) {
  constexpr double kUnitRoundoff = 5.96e-8;  // 2^-24
  return 8 * kUnitRoundoff * static_cast<double>(std::max<int64_t>(length, 1)) * scale;
}

std::string compare(const Tensor& actual, const Array& expected, double tol) {
  if (actual.shape() != expected.shape)
    return "shape " + ints(actual.shape()) + ", reference " + ints(expected.shape);
  const std::vector<double> a = actual.as_double();
  int64_t bad = 0, worst = -1;
  double worst_err = 0;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    const double err = std::abs(a[i] - expected[i]);
    if (!(err <= tol)) {  // NaN fails too
      ++bad;
      if (worst < 0 || !(err <= worst_err)) worst = i, worst_err = err;
    }
  }
  if (!bad) return "";
  std::ostringstream r;
  r << bad << " of " << expected.numel() << " elements off by more than " << tol << "; worst at flat index " << worst
    << ": got " << a[worst] << ", reference " << expected[worst] << " (error " << worst_err << ")";
  return r.str();
}

}  // namespace onnxtrain::test
