#include "tests/support/unary_grad.h"

#include <onnx/onnx_pb.h>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "src/executor.h"
#include "tests/support/node_case.h"

namespace onnxtrain::test::unary_grad {

std::vector<Tensor> gradients(const std::string& text, const std::string& loss, const std::vector<std::string>& wrt,
                              const std::unordered_map<std::string, Tensor>& feeds) {
  onnx::ModelProto proto;
  graph::load_model_text(text, proto);
  graph::ImportOptions options;
  options.model_path = "test model";
  auto g = graph::import_graph(proto, options);
  auto grads = graph::build_gradient_graph(*g, loss, wrt);
  std::vector<std::string> fetch;
  for (const auto& w : wrt) fetch.push_back(grads.gradient_of.at(w));
  Executor ex(*g, fetch);
  return ex.run(feeds);
}

std::vector<double> values(const Tensor& t) {
  std::vector<double> out;
  for (int64_t i = 0; i < t.numel(); ++i)
    out.push_back(t.dtype() == DType::Double ? t.data<double>()[i] : t.data<float>()[i]);
  return out;
}

std::string type_name(DType t) { return t == DType::Double ? "double" : "float"; }

std::string shape_text(const Shape& s) { return shape_str(s); }
std::string unary_check(const UnaryCase& p, DType dtype, const Shape& shape) {
  GradCase c;
  const std::string t = type_name(dtype) + shape_text(shape);
  std::string extra = p.extra;
  for (size_t k; (k = extra.find("TYPE")) != std::string::npos;) extra.replace(k, 4, type_name(dtype));
  c.model_text = model_header(p.opset) + "g (" + t + " X) => (" + t + " Y) { " + extra + " Y = " + p.node + " }";
  c.inputs = {{"X", test::random_away_from(dtype, shape, 7, p.kinks, 0.05, p.lo, p.hi)}};
  c.wrt = {"X"};
  if (dtype == DType::Float) c.four_point = true;
  return test::check_gradients(c);
}

}  // namespace onnxtrain::test::unary_grad
