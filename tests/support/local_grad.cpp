#include "tests/support/local_grad.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <sstream>
#include <unordered_map>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "src/executor.h"

namespace onnxtrain::test::local_grad {

void loosen_for_float(GradCase& c, DType dt) {
  if (dt != DType::Float) return;
  c.four_point = true;
  c.eps = 1e-2;
  c.rtol = 2e-2;
  c.atol = 2e-3;
}

std::string local_check(const std::string& model_text, const std::map<std::string, Tensor>& inputs,
                        const std::vector<std::string>& wrt, double eps, double rtol, double atol,
                        bool four_point) {
  onnx::ModelProto proto;
  graph::load_model_text(model_text, proto);
  auto g = graph::import_graph(proto, graph::ImportOptions{});
  graph::Value& y = g->value(g->outputs.at(0)->name);
  std::unordered_map<std::string, Tensor> feeds(inputs.begin(), inputs.end());
  Tensor y_value = Executor(*g, {y.name}).run(feeds)[0];
  const Tensor r = test::random_tensor(y_value.dtype(), y_value.shape(), 99, 0.5, 1.5);
  graph::Value* prod = g->add_value("__prod", y_value.dtype());
  g->add_node("Mul", {&y, g->add_constant("__R", r)}, {prod}, "", "__mul");
  g->outputs = {prod};
  // A non-scalar loss is seeded with ones: the gradient of sum(prod).
  auto grads = graph::build_gradient_graph(*g, prod->name, wrt);
  std::vector<std::string> fetch{prod->name};
  for (const auto& name : wrt) {
    if (!grads.gradient_of.count(name)) return "no gradient was built for '" + name + "'";
    fetch.push_back(grads.gradient_of[name]);
  }
  auto analytic = Executor(*g, fetch).run(feeds);
  auto get = [](const Tensor& t, int64_t i) {
    return t.dtype() == DType::Double ? t.data<double>()[i] : static_cast<double>(t.data<float>()[i]);
  };
  auto set = [](Tensor& t, int64_t i, double v) {
    if (t.dtype() == DType::Double) t.data<double>()[i] = v;
    else t.data<float>()[i] = static_cast<float>(v);
  };
  auto loss = [&]() {
    Tensor p = Executor(*g, {prod->name}).run(feeds)[0];
    double sum = 0;
    for (int64_t i = 0; i < p.numel(); ++i) sum += get(p, i);
    return sum;
  };
  std::ostringstream report;
  for (size_t w = 0; w < wrt.size(); ++w) {
    Tensor& x = feeds[wrt[w]];
    const Tensor& ga = analytic[w + 1];
    if (ga.shape() != x.shape()) {
      report << "gradient of '" << wrt[w] << "' has shape " << shape_str(ga.shape()) << "\n";
      continue;
    }
    for (int64_t i = 0; i < x.numel(); ++i) {
      const double x0 = get(x, i);
      auto f = [&](double d) {
        set(x, i, x0 + d);
        return loss();
      };
      const double numeric = four_point ? (-f(2 * eps) + 8 * f(eps) - 8 * f(-eps) + f(-2 * eps)) / (12 * eps)
                                        : (f(eps) - f(-eps)) / (2 * eps);
      set(x, i, x0);
      const double a = get(ga, i);
      if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric)))
        report << "'" << wrt[w] << "' element " << i << ": analytic " << a << ", numeric " << numeric << "\n";
    }
  }
  return report.str();
}

std::string check(const GradCase& c, int opset) {
  if (opset >= 8) return test::check_gradients(c);
  std::vector<std::string> wrt = c.wrt;
  if (wrt.empty())
    for (const auto& [name, t] : c.inputs)
      if (is_floating(t.dtype())) wrt.push_back(name);
  const bool dbl = c.inputs.begin()->second.dtype() == DType::Double;
  return local_check(c.model_text, c.inputs, wrt, c.eps > 0 ? c.eps : (dbl ? 1e-6 : 1e-2),
                     c.rtol > 0 ? c.rtol : (dbl ? 1e-5 : 2e-2), c.atol > 0 ? c.atol : (dbl ? 1e-7 : 2e-3),
                     c.four_point);
}


}  // namespace onnxtrain::test::local_grad
