#include "tests/support/gradcheck.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <random>
#include <sstream>
#include <unordered_map>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "src/executor.h"

namespace onnxtrain::test {

namespace {

double get(const Tensor& t, int64_t i) {
  return t.dtype() == DType::Double ? t.data<double>()[i] : t.data<float>()[i];
}

void set(Tensor& t, int64_t i, double v) {
  if (t.dtype() == DType::Double) t.data<double>()[i] = v;
  else t.data<float>()[i] = static_cast<float>(v);
}

}  // namespace

Tensor random_tensor(DType dtype, const Shape& shape, uint64_t seed, double lo, double hi) {
  Tensor t(dtype, shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) set(t, i, dist(rng));
  return t;
}

Tensor random_away_from(DType dtype, const Shape& shape, uint64_t seed, std::vector<double> kinks, double gap,
                        double lo, double hi) {
  Tensor t(dtype, shape);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v;
    bool ok;
    do {
      v = dist(rng);
      ok = true;
      for (double k : kinks) ok = ok && std::abs(v - k) >= gap;
    } while (!ok);
    set(t, i, v);
  }
  return t;
}

std::string check_gradients(const GradCase& c) {
  onnx::ModelProto proto;
  graph::load_model_text(c.model_text, proto);
  graph::ImportOptions options;
  options.model_path = "gradcheck model";
  auto g = graph::import_graph(proto, options);

  std::string output = c.output.empty() ? g->outputs.at(0)->name : c.output;
  graph::Value& y = g->value(output);
  // Feed Y once to learn its shape and dtype, then build loss = sum(Y * R).
  Tensor y_value;
  {
    Executor probe(*g, {output});
    std::unordered_map<std::string, Tensor> feeds(c.inputs.begin(), c.inputs.end());
    y_value = probe.run(feeds)[0];
  }
  if (!is_floating(y_value.dtype())) return "output '" + output + "' is not floating point";
  // The checked scalar is formed in double whatever Y's type, so its own rounding does not
  // swamp the finite differences of float32 outputs.
  graph::Value* y_checked = &y;
  if (y_value.dtype() != DType::Double) {
    y_checked = g->add_value("__gradcheck_y_double", DType::Double);
    graph::Node* cast = g->add_node("Cast", {&y}, {y_checked}, "", "__gradcheck_cast");
    cast->attributes["to"] = static_cast<int64_t>(DType::Double);
  }
  Tensor r = random_tensor(DType::Double, y_value.shape(), c.seed + 17, 0.5, 1.5);
  graph::Value* r_value = g->add_constant("__gradcheck_R", r);
  graph::Value* prod = g->add_value("__gradcheck_prod", DType::Double);
  g->add_node("Mul", {y_checked, r_value}, {prod}, "", "__gradcheck_mul");
  graph::Value* empty_shape = g->add_constant("__gradcheck_scalar_shape", Tensor(DType::Int64, {0}));
  graph::Value* loss = g->add_value("__gradcheck_loss", DType::Double);
  g->add_node("ReduceSumTo", {prod, empty_shape}, {loss}, graph::kTrainingDomain, "__gradcheck_sum");
  g->outputs = {loss};

  std::vector<std::string> wrt = c.wrt;
  if (wrt.empty())
    for (const auto& [name, t] : c.inputs)
      if (is_floating(t.dtype())) wrt.push_back(name);
  // Checked inputs become graph inputs so the executor reads the perturbed values.
  auto grads = graph::build_gradient_graph(*g, loss->name, wrt);

  std::vector<std::string> fetch{loss->name};
  for (const auto& name : wrt) {
    if (!grads.gradient_of.count(name)) return "no gradient was built for '" + name + "'";
    fetch.push_back(grads.gradient_of[name]);
  }
  std::unordered_map<std::string, Tensor> feeds;
  for (const auto& [name, t] : c.inputs) feeds[name] = t.clone();
  Executor backward(*g, fetch);
  auto analytic = backward.run(feeds);
  Executor forward(*g, {loss->name});
  auto eval = [&]() { return get(forward.run(feeds)[0], 0); };

  std::ostringstream report;
  for (size_t w = 0; w < wrt.size(); ++w) {
    Tensor& x = feeds[wrt[w]];
    const Tensor& ga = analytic[w + 1];
    const bool dbl = x.dtype() == DType::Double;
    const double eps = c.eps > 0 ? c.eps : (dbl ? 1e-6 : 1e-2);
    const double rtol = c.rtol > 0 ? c.rtol : (dbl ? 1e-5 : 2e-2);
    const double atol = c.atol > 0 ? c.atol : (dbl ? 1e-7 : 2e-3);
    if (ga.shape() != x.shape()) {
      report << "gradient of '" << wrt[w] << "' has shape " << shape_str(ga.shape()) << ", the input "
             << shape_str(x.shape()) << "\n";
      continue;
    }
    const int64_t n = x.numel();
    const int64_t stride = std::max<int64_t>(1, n / c.max_elements);
    int bad = 0;
    double worst = 0;
    std::string worst_text;
    for (int64_t i = 0; i < n; i += stride) {
      const double x0 = get(x, i);
      auto f = [&](double delta) {
        set(x, i, x0 + delta);
        return eval();
      };
      double numeric;
      if (c.four_point)
        numeric = (-f(2 * eps) + 8 * f(eps) - 8 * f(-eps) + f(-2 * eps)) / (12 * eps);
      else
        numeric = (f(eps) - f(-eps)) / (2 * eps);
      set(x, i, x0);
      const double a = get(ga, i);
      const double err = std::abs(a - numeric);
      if (!(err <= atol + rtol * std::abs(numeric))) {
        ++bad;
        if (err >= worst || std::isnan(err)) {
          worst = err;
          std::ostringstream s;
          s << "element " << i << ": analytic " << a << ", numeric " << numeric;
          worst_text = s.str();
        }
      }
    }
    if (bad) report << "'" << wrt[w] << "': " << bad << " element(s) differ; worst " << worst_text << "\n";
  }
  return report.str();
}

}  // namespace onnxtrain::test
