#include "tests/reference/reference_support.h"

#include <algorithm>
#include <cmath>
#include <sstream>

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

std::map<std::string, Tensor> run_node(const std::string& op, const std::string& attrs,
                                       const std::vector<std::pair<std::string, Tensor>>& inputs,
                                       const std::vector<std::pair<std::string, size_t>>& outputs,
                                       const std::string& out_type) {
  std::ostringstream text;
  text << "<ir_version: 8, opset_import: [\"\" : 17, \"ai.onnxtrain\" : 1]>\ng (";
  std::map<std::string, Tensor> feeds;
  std::string args, decls;
  for (size_t i = 0; i < inputs.size(); ++i) {
    args += i ? ", " : "";
    const auto& [name, t] = inputs[i];
    if (name.empty()) continue;
    const DType dt = t.dtype();
    const char* type = dt == DType::Float    ? "float"
                       : dt == DType::Double ? "double"
                       : dt == DType::Int32  ? "int32"
                                             : "int64";
    // "float[]" would mean unknown rank: a scalar is declared without brackets
    decls += (decls.empty() ? "" : ", ") + std::string(type) + (t.rank() ? ints(t.shape()) : "") + " " + name;
    args += name;
    feeds[name] = t;
  }
  std::string outs, results;
  for (size_t i = 0; i < outputs.size(); ++i) {
    results += i ? ", " : "";
    if (outputs[i].first.empty()) continue;
    results += outputs[i].first;
    std::string dims;
    for (size_t d = 0; d < outputs[i].second; ++d) dims += (d ? "," : "[") + outputs[i].first + "_" + std::to_string(d);
    if (outputs[i].second) dims += "]";
    outs += (outs.empty() ? "" : ", ") + out_type + dims + " " + outputs[i].first;
  }
  text << decls << ") => (" << outs << ") {\n  " << results << " = " << op << (attrs.empty() ? "" : " <" + attrs + ">")
       << " (" << args << ")\n}";
  Model model = Model::from_text(text.str());
  InferenceSession session(model);
  return session.run(feeds);
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
