// Optimizer ops (ops/optimizer.cpp), ai.onnxtrain SGD/Adam/AdamW/Adagrad/RMSprop:
//
// * against torch.optim 1.13 itself: 5 steps of 16 configurations recorded by
//   tests/data/optim/make_optim.py (optim.npz), float64 and float32, with lr schedules, in
//   place, state inputs NaN-filled before step 1 (the kernel must not read them then).
// * against references written here from torch's documented update rules, on large tensors
//   (parallel chunks) plus small ones in one node.
// ai.onnx.preview.training ops: optimizer_preview_test.cpp; errors: optimizer_errors_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "onnxtrain/npy.h"
#include "onnxtrain/onnxtrain.h"
#include "tests/support/optimizer_node.h"

using namespace onnxtrain;
using namespace onnxtrain::test::optim;
using test::expect_error;

namespace {

constexpr const char* kTrain = "ai.onnxtrain";
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// ---- against torch.optim ---------------------------------------------------------------------

struct TorchCase {
  std::string name, op, attrs;
  std::vector<std::string> states;  // torch state names, in the op's input order
};

const std::vector<TorchCase>& torch_cases() {
  static const std::vector<TorchCase> cases = {
      {"sgd", "SGD", "", {}},
      {"sgd_wd", "SGD", "weight_decay = 0.05", {}},
      {"sgd_momentum", "SGD", "momentum = 0.9, dampening = 0.1, weight_decay = 0.01", {"momentum_buffer"}},
      {"sgd_nesterov", "SGD", "momentum = 0.8, nesterov = 1, weight_decay = 0.02", {"momentum_buffer"}},
      {"sgd_maximize", "SGD", "momentum = 0.5, maximize = 1", {"momentum_buffer"}},
      {"adam", "Adam", "", {"exp_avg", "exp_avg_sq"}},
      {"adam_wd", "Adam", "beta1 = 0.8, beta2 = 0.95, eps = 0.000001, weight_decay = 0.1", {"exp_avg", "exp_avg_sq"}},
      {"adam_amsgrad", "Adam", "beta1 = 0.5, beta2 = 0.9, eps = 0.001, weight_decay = 0.01, amsgrad = 1",
       {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
      {"adamw", "AdamW", "", {"exp_avg", "exp_avg_sq"}},
      {"adamw_amsgrad", "AdamW", "beta1 = 0.7, beta2 = 0.99, eps = 0.0001, weight_decay = 0.2, amsgrad = 1",
       {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
      {"adagrad", "Adagrad", "", {"sum"}},
      {"adagrad_full", "Adagrad", "lr_decay = 0.3, weight_decay = 0.05, initial_accumulator_value = 0.4, eps = 0.0001",
       {"sum"}},
      {"rmsprop", "RMSprop", "", {"square_avg"}},
      {"rmsprop_momentum", "RMSprop", "alpha = 0.9, eps = 0.000001, weight_decay = 0.03, momentum = 0.7",
       {"square_avg", "momentum_buffer"}},
      {"rmsprop_centered", "RMSprop", "alpha = 0.8, eps = 0.00001, centered = 1", {"square_avg", "grad_avg"}},
      {"rmsprop_centered_momentum", "RMSprop",
       "alpha = 0.95, eps = 0.0001, weight_decay = 0.01, momentum = 0.5, centered = 1, maximize = 1",
       {"square_avg", "grad_avg", "momentum_buffer"}},
  };
  return cases;
}

const std::map<std::string, Tensor>& torch_data() {
  static const std::map<std::string, Tensor> data = read_npz(test::source_dir() + "/tests/data/optim/optim.npz");
  return data;
}

// Row `step` of a [steps, 17] array, split into the two parameters' shapes.
std::vector<std::vector<double>> split_row(const Tensor& t, int64_t row) {
  std::vector<double> all = t.as_double();
  const int64_t width = t.rank() == 2 ? t.dim(1) : t.dim(0);
  std::vector<double> r(all.begin() + row * width, all.begin() + (row + 1) * width);
  return {std::vector<double>(r.begin(), r.begin() + 12), std::vector<double>(r.begin() + 12, r.end())};
}

void run_torch_case(const TorchCase& c, DType dtype) {
  SCOPED_TRACE(c.name + " " + dtype_name(dtype));
  const auto& data = torch_data();
  auto get = [&](const std::string& key) -> const Tensor& {
    auto it = data.find(key);
    if (it == data.end()) throw std::runtime_error("optim.npz has no array " + key);
    return it->second;
  };
  const std::vector<Shape> shapes{{3, 4}, {5}};
  OptimizerNode node(kTrain, c.op, c.attrs, dtype, shapes, c.states.size(), DType::Double);
  auto x0 = split_row(get("x0"), 0);
  std::vector<Tensor> x{make_tensor(dtype, shapes[0], x0[0]), make_tensor(dtype, shapes[1], x0[1])};
  // States hold NaN before the first step: the kernel initialises them itself.
  std::vector<std::vector<Tensor>> s;
  for (size_t k = 0; k < c.states.size(); ++k)
    s.push_back({make_tensor(dtype, shapes[0], std::vector<double>(12, kNaN)),
                 make_tensor(dtype, shapes[1], std::vector<double>(5, kNaN))});
  const double rtol = dtype == DType::Double ? 1e-10 : 2e-5, atol = dtype == DType::Double ? 1e-13 : 2e-6;
  const std::vector<double> lrs = get(c.name + ".lr").as_double();
  for (int64_t step = 1; step <= 5; ++step) {
    SCOPED_TRACE(indexed("step ", step));
    auto gs = split_row(get("g"), step - 1);
    std::vector<Tensor> g{make_tensor(dtype, shapes[0], gs[0]), make_tensor(dtype, shapes[1], gs[1])};
    auto out = node.run(Tensor::scalar<double>(lrs[step - 1]), step, x, g, s);
    auto expected_x = split_row(get(c.name + ".x"), step - 1);
    for (size_t j = 0; j < 2; ++j) {
      const Tensor& xn = out.at(indexed("Xn", j));
      EXPECT_EQ(xn.raw(), x[j].raw()) << "X" << j << " is not updated in place";
      expect_close(xn, expected_x[j], rtol, atol, indexed("X", j));
      for (size_t k = 0; k < c.states.size(); ++k) {
        const Tensor& sn = out.at(OptimizerNode::new_state(k, j));
        EXPECT_EQ(sn.raw(), s[k][j].raw()) << c.states[k] << " is not updated in place";
        expect_close(sn, split_row(get(c.name + "." + c.states[k]), step - 1)[j], rtol, atol, c.states[k]);
      }
    }
  }
}

TEST(TorchOptimizers, MatchTorchOptimFloat64) {
  for (const auto& c : torch_cases()) run_torch_case(c, DType::Double);
}

TEST(TorchOptimizers, MatchTorchOptimFloat32) {
  for (const auto& c : torch_cases()) run_torch_case(c, DType::Float);
}

TEST(TorchOptimizers, TorchDataCoversEveryCase) {
  size_t arrays = 2;  // x0, g
  for (const auto& c : torch_cases()) arrays += 2 + c.states.size();
  EXPECT_EQ(torch_data().size(), arrays) << "tests/data/optim/optim.npz and torch_cases() disagree";
}

// ---- against references from torch's documented update rules --------------------------------

// One element's update: x and its states in, lr and the 1-based step t given. The states
// start at zero (Adagrad: initial_accumulator_value) like torch's fresh optimizer state.
using Reference = std::function<void(double lr, int t, double& x, double g, std::vector<double>& s)>;

struct FormulaCase {
  std::string name, op, attrs;
  size_t states;
  std::vector<double> initial_state;  // per state, before step 1
  Reference ref;
};

std::vector<FormulaCase> formula_cases() {
  std::vector<FormulaCase> cases;
  // SGD: g += wd·x; b = t==1 ? g : μ·b + (1−τ)·g; g = nesterov ? g + μ·b : b; x −= γ·g
  auto sgd = [](double mu, double tau, double wd, bool nesterov, bool maximize) -> Reference {
    return [=](double lr, int t, double& x, double g, std::vector<double>& s) {
      if (maximize) g = -g;
      g += wd * x;
      if (mu != 0) {
        s[0] = t == 1 ? g : mu * s[0] + (1 - tau) * g;
        g = nesterov ? g + mu * s[0] : s[0];
      }
      x -= lr * g;
    };
  };
  cases.push_back({"sgd momentum+dampening+wd", "SGD", "momentum = 0.9, dampening = 0.25, weight_decay = 0.01", 1, {0},
                   sgd(0.9, 0.25, 0.01, false, false)});
  cases.push_back({"sgd nesterov", "SGD", "momentum = 0.7, nesterov = 1", 1, {0}, sgd(0.7, 0, 0, true, false)});
  cases.push_back({"sgd plain maximize", "SGD", "maximize = 1, weight_decay = 0.1", 0, {}, sgd(0, 0, 0.1, false, true)});
  // Adam(W): m̂ = m/(1−β1^t), v̂ = v/(1−β2^t); x −= γ·m̂/(√v̂ + ε). With amsgrad, torch 1.13
  // keeps the running maximum of the raw v (not of v̂, as its docs write) and divides it by
  // the current (1−β2^t).
  auto adam = [](double b1, double b2, double eps, double wd, bool amsgrad, bool decoupled) -> Reference {
    return [=](double lr, int t, double& x, double g, std::vector<double>& s) {
      if (decoupled) x *= 1 - lr * wd;
      else g += wd * x;
      s[0] = b1 * s[0] + (1 - b1) * g;
      s[1] = b2 * s[1] + (1 - b2) * g * g;
      double v = s[1];
      if (amsgrad) v = s[2] = std::max(s[2], s[1]);
      const double m_hat = s[0] / (1 - std::pow(b1, t)), v_hat = v / (1 - std::pow(b2, t));
      x -= lr * m_hat / (std::sqrt(v_hat) + eps);
    };
  };
  cases.push_back({"adam wd", "Adam", "beta1 = 0.85, beta2 = 0.97, eps = 0.001, weight_decay = 0.05", 2, {0, 0},
                   adam(0.85, 0.97, 1e-3, 0.05, false, false)});
  cases.push_back({"adam amsgrad", "Adam", "beta1 = 0.6, beta2 = 0.9, eps = 0.001, amsgrad = 1", 3, {0, 0, 0},
                   adam(0.6, 0.9, 1e-3, 0, true, false)});
  cases.push_back({"adamw", "AdamW", "beta1 = 0.9, beta2 = 0.99, eps = 0.001, weight_decay = 0.3", 2, {0, 0},
                   adam(0.9, 0.99, 1e-3, 0.3, false, true)});
  cases.push_back({"adamw amsgrad", "AdamW", "eps = 0.001, amsgrad = 1", 3, {0, 0, 0},
                   adam(0.9, 0.999, 1e-3, 0.01, true, true)});
  // Adagrad: γ̃ = γ/(1+(t−1)·η); g += wd·x; sum += g²; x −= γ̃·g/(√sum + ε)
  cases.push_back({"adagrad", "Adagrad", "lr_decay = 0.5, weight_decay = 0.02, initial_accumulator_value = 0.25, eps = 0.001", 1,
                   {0.25}, [](double lr, int t, double& x, double g, std::vector<double>& s) {
                     g += 0.02 * x;
                     s[0] += g * g;
                     x -= lr / (1 + (t - 1) * 0.5) * g / (std::sqrt(s[0]) + 1e-3);
                   }});
  // RMSprop: v = α·v + (1−α)·g²; centered: ga = α·ga + (1−α)·g, ṽ = v − ga²;
  // momentum: b = μ·b + g/(√ṽ + ε), x −= γ·b; otherwise x −= γ·g/(√ṽ + ε)
  auto rmsprop = [](double alpha, double eps, double wd, double mu, bool centered) -> Reference {
    return [=](double lr, int, double& x, double g, std::vector<double>& s) {
      g += wd * x;
      s[0] = alpha * s[0] + (1 - alpha) * g * g;
      double v = s[0];
      size_t next = 1;
      if (centered) {
        s[1] = alpha * s[1] + (1 - alpha) * g;
        v -= s[1] * s[1];
        next = 2;
      }
      const double step = g / (std::sqrt(v) + eps);
      if (mu > 0) {
        s[next] = mu * s[next] + step;
        x -= lr * s[next];
      } else {
        x -= lr * step;
      }
    };
  };
  cases.push_back({"rmsprop centered momentum wd", "RMSprop",
                   "alpha = 0.9, eps = 0.001, weight_decay = 0.01, momentum = 0.6, centered = 1", 3, {0, 0, 0},
                   rmsprop(0.9, 1e-3, 0.01, 0.6, true)});
  cases.push_back({"rmsprop momentum", "RMSprop", "eps = 0.001, momentum = 0.9", 2, {0, 0}, rmsprop(0.99, 1e-3, 0, 0.9, false)});
  cases.push_back({"rmsprop centered", "RMSprop", "alpha = 0.5, eps = 0.001, centered = 1", 2, {0, 0},
                   rmsprop(0.5, 1e-3, 0, 0, true)});
  return cases;
}

TEST(TorchOptimizers, MatchDocumentedFormulasOnLargeAndSmallTensors) {
  // 70000 elements span several parallel chunks; the small tensors share the node.
  const std::vector<Shape> shapes{{7, 10000}, {3, 5}, {}};
  const std::vector<double> lrs{0.01, 0.02, 0.005, 0.01};
  for (const auto& c : formula_cases()) {
    for (DType dtype : {DType::Double, DType::Float}) {
      SCOPED_TRACE(c.name + " " + dtype_name(dtype));
      OptimizerNode node(kTrain, c.op, c.attrs, dtype, shapes, c.states, dtype);
      std::vector<std::vector<double>> ref_x;
      std::vector<Tensor> x;
      std::vector<std::vector<Tensor>> s(c.states);
      std::vector<std::vector<std::vector<double>>> ref_s(c.states);
      for (size_t j = 0; j < shapes.size(); ++j) {
        const size_t n = static_cast<size_t>(shape_numel(shapes[j]));
        auto init = pseudo_random(n, 11 + static_cast<uint32_t>(j));
        if (dtype == DType::Float)
          for (auto& v : init) v = static_cast<float>(v);
        ref_x.push_back(init);
        x.push_back(make_tensor(dtype, shapes[j], init));
        for (size_t k = 0; k < c.states; ++k) {
          s[k].push_back(make_tensor(dtype, shapes[j], std::vector<double>(n, kNaN)));
          ref_s[k].push_back(std::vector<double>(n, c.initial_state[k]));
        }
      }
      for (int t = 1; t <= 4; ++t) {
        std::vector<Tensor> g;
        for (size_t j = 0; j < shapes.size(); ++j) {
          const size_t n = static_cast<size_t>(shape_numel(shapes[j]));
          auto gv = pseudo_random(n, 100 * t + static_cast<uint32_t>(j));
          if (dtype == DType::Float)
            for (auto& v : gv) v = static_cast<float>(v);
          g.push_back(make_tensor(dtype, shapes[j], gv));
          std::vector<double> st(c.states);
          for (size_t i = 0; i < n; ++i) {
            for (size_t k = 0; k < c.states; ++k) st[k] = ref_s[k][j][i];
            c.ref(lrs[t - 1], t, ref_x[j][i], gv[i], st);
            for (size_t k = 0; k < c.states; ++k) ref_s[k][j][i] = st[k];
          }
        }
        auto lr = dtype == DType::Float ? Tensor::scalar<float>(static_cast<float>(lrs[t - 1]))
                                        : Tensor::scalar<double>(lrs[t - 1]);
        node.run(lr, t, x, g, s);
        const double rtol = dtype == DType::Double ? 1e-10 : 1e-4, atol = dtype == DType::Double ? 1e-12 : 1e-5;
        for (size_t j = 0; j < shapes.size(); ++j) {
          expect_close(x[j], ref_x[j], rtol, atol, indexed("X", j) + indexed(" step ", t));
          for (size_t k = 0; k < c.states; ++k)
            expect_close(s[k][j], ref_s[k][j], rtol, atol,
                         indexed("state ", k) + "[" + std::to_string(j) + "] step " + std::to_string(t));
        }
      }
    }
  }
}

TEST(TorchOptimizers, UpdatesInitializersInPlaceAcrossRuns) {
  // The parameter is an initializer: each run's update lands in the model's own storage.
  Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17, "ai.onnxtrain" : 1]>
    g (float R, int64 T, float[3] G, float[3] B) => (float[3] Xn, float[3] Bn)
    <float[3] W = {1.0, 2.0, 3.0}>
    {
      Xn, Bn = ai.onnxtrain.SGD <momentum = 0.5> (R, T, W, G, B)
    }
  )");
  InferenceSession session(model);
  Tensor buf(DType::Float, {3});
  Tensor g = Tensor::from_vector<float>({3}, {1.f, -1.f, 0.5f});
  std::vector<double> w{1, 2, 3}, b{0, 0, 0};
  for (int t = 1; t <= 3; ++t) {
    auto out = session.run({{"R", Tensor::scalar<float>(0.1f)}, {"T", Tensor::scalar<int64_t>(t)}, {"G", g}, {"B", buf}});
    for (int i = 0; i < 3; ++i) {
      const double gi = g.data<float>()[i];
      b[i] = t == 1 ? gi : 0.5 * b[i] + gi;
      w[i] -= 0.1 * b[i];
    }
    expect_close(out.at("Xn"), w, 1e-6, 1e-7, indexed("W step ", t));
    expect_close(buf, b, 1e-6, 1e-7, indexed("momentum buffer step ", t));
  }
}

}  // namespace
