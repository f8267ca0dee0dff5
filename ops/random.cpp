// Random ops: Dropout and the random generators (RandomNormal, RandomUniform, their *Like
// forms, Bernoulli, Multinomial). Draws come from the executor's seeded generator
// (ctx.rng()), so a session seed reproduces a run; a node with a `seed` attribute owns a
// generator seeded from it at plan time, making its draws independent of the other nodes.
#include <algorithm>
#include <bit>
#include <cmath>
#include <optional>
#include <random>

#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

// Dropout's ratio input, read without a heap allocation in the common float types.
double first_ratio(const Tensor& t) {
  if (t.dtype() == DType::Float && t.numel() > 0) return t.data<float>()[0];
  if (t.dtype() == DType::Double && t.numel() > 0) return t.data<double>()[0];
  return t.as_double().at(0);
}

class Generator {
 public:
  // `seed` is a float attribute on the generator ops and an int on Dropout.
  explicit Generator(const Node& node) {
    auto it = node.attributes.find("seed");
    if (it == node.attributes.end()) return;
    if (const auto* i = std::get_if<int64_t>(&it->second))
      own_.emplace(static_cast<uint64_t>(*i));
    else if (const auto* f = std::get_if<float>(&it->second))
      own_.emplace(std::bit_cast<uint32_t>(*f));
    else
      fail(node, "attribute 'seed' must be an int or a float");
  }
  std::mt19937_64& get(KernelContext& ctx) { return own_ ? *own_ : ctx.rng(); }

 private:
  std::optional<std::mt19937_64> own_;
};

// Uniform in [0, 1) with 53 random bits (the same sequence on every platform, unlike
// std::uniform_real_distribution).
inline double uniform01(std::mt19937_64& g) { return static_cast<double>(g() >> 11) * 0x1.0p-53; }

// The i-th number of the stream `key`: SplitMix64's output function on a Weyl sequence,
// the generator java.util.SplittableRandom uses (its outputs pass BigCrush).
inline uint64_t counter_random(uint64_t key, uint64_t i) {
  uint64_t z = key + (i + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// ---------------------------------------------------------------------------------------
// Dropout. Training mode: opsets 1-6 when is_test=0; opsets 7-11 never (the runtime has no
// training flag to give it, and the spec makes it a copy at inference); opset 12+ from the
// optional training_mode input. The mask is T before opset 10 and bool after.
class DropoutKernel final : public Kernel {
 public:
  DropoutKernel(const Node& node, const std::vector<InputInfo>& in) : gen_(node) {
    if (in.empty() || !in[0].present) fail(node, "requires input 'data'");
    dispatch_float(in[0].dtype, node, [](auto) {});
    opset_ = node.opset;
    ratio_ = node.attr_float("ratio", 0.5f);
    if (opset_ < 7) training_ = node.attr_int("is_test", 0) == 0;
    if (opset_ >= 12) {
      if (in.size() > 1 && in[1].present && shape_numel(in[1].shape) != 1)
        fail_shape(node, "ratio must be a scalar, got shape " + shape_str(in[1].shape));
      if (in.size() > 2 && in[2].present && (in[2].dtype != DType::Bool || shape_numel(in[2].shape) != 1))
        fail_shape(node, "training_mode must be a bool scalar");
    }
    check_ratio(node, ratio_);
  }

  void run(KernelContext& ctx) override {
    const Tensor& x = ctx.input(0);
    double ratio = ratio_;
    bool training = training_;
    if (opset_ >= 12) {
      if (ctx.has_input(1)) ratio = first_ratio(ctx.input(1));
      training = ctx.has_input(2) && ctx.input(2).data<bool>()[0];
      check_ratio(ctx.node(), ratio);
    }
    const bool want_mask = ctx.wants_output(1);
    const DType mask_type = opset_ < 10 ? x.dtype() : DType::Bool;
    if (!training || ratio == 0.0) {
      ctx.set_output(0, x);
      if (want_mask) {
        Tensor& mask = ctx.output(1, mask_type, x.shape());
        dispatch_all(mask_type, ctx.node(), [&](auto tag) {
          using M = decltype(tag);
          std::fill_n(mask.data<M>(), mask.numel(), static_cast<M>(1));
        });
      }
      return;
    }
    Tensor& y = ctx.output(0, x.dtype(), x.shape());
    Tensor* mask = want_mask ? &ctx.output(1, mask_type, x.shape()) : nullptr;
    // One draw from the generator per call keys a counter-based stream: element i keeps
    // when the i-th number of that stream is >= ratio. So threads fill disjoint chunks and the
    // mask depends on the seed alone, not on the thread count (a sequential generator made
    // this one of the few serial kernels of a training step).
    const uint64_t key = gen_.get(ctx)();
    // Keep when the top 53 bits, as a fraction of 2^53, are >= ratio (exact in double).
    const uint64_t threshold = static_cast<uint64_t>(std::ceil(ratio * 0x1.0p53));
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = x.data<T>();
      T* dst = y.data<T>();
      const T scale = ratio < 1.0 ? static_cast<T>(1.0 / (1.0 - ratio)) : T(0);
      bool* bool_mask = mask && mask_type == DType::Bool ? mask->data<bool>() : nullptr;
      T* float_mask = mask && mask_type != DType::Bool ? mask->data<T>() : nullptr;
      parallel_chunks(x.numel(), [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) {
          const bool keep = (counter_random(key, static_cast<uint64_t>(i)) >> 11) >= threshold;
          dst[i] = keep ? src[i] * scale : T(0);
          if (bool_mask) bool_mask[i] = keep;
          if (float_mask) float_mask[i] = keep ? T(1) : T(0);
        }
      });
    });
  }

 private:
  static void check_ratio(const Node& node, double ratio) {
    if (!(ratio >= 0.0 && ratio <= 1.0)) fail(node, "ratio must be in [0, 1], got " + std::to_string(ratio));
  }

  Generator gen_;
  int opset_ = 0;
  double ratio_ = 0.5;
  bool training_ = false;
};

// ---------------------------------------------------------------------------------------
// RandomNormal / RandomUniform and their *Like forms.
enum class Dist { Normal, Uniform };

DType float_dtype_attr(const Node& node, DType fallback) {
  DType dt = node.has_attr("dtype") ? static_cast<DType>(node.attr_int("dtype")) : fallback;
  if (dt != DType::Float && dt != DType::Double) fail(node, "does not support dtype " + dtype_name(dt));
  return dt;
}

KernelFactory random_factory(Dist dist, bool like) {
  return [dist, like](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    Shape shape;
    DType dtype;
    if (like) {
      if (in.empty() || !in[0].present) fail(node, "requires input 'input'");
      dtype = float_dtype_attr(node, in[0].dtype);
    } else {
      if (!node.has_attr("shape")) fail(node, "requires the 'shape' attribute");
      shape = node.attr_ints("shape");
      for (int64_t d : shape)
        if (d < 0) fail_shape(node, "shape has a negative dimension: " + shape_str(shape));
      dtype = float_dtype_attr(node, DType::Float);
    }
    double a, b;  // (mean, scale) or (low, high)
    if (dist == Dist::Normal) {
      a = node.attr_float("mean", 0.f), b = node.attr_float("scale", 1.f);
    } else {
      a = node.attr_float("low", 0.f), b = node.attr_float("high", 1.f);
      if (!(a <= b)) fail(node, "low must not exceed high");
    }
    return make_function_kernel([gen = Generator(node), dist, like, shape, dtype, a, b](KernelContext& ctx) mutable {
      Tensor& y = ctx.output(0, dtype, like ? ctx.input(0).shape() : shape);
      std::mt19937_64& g = gen.get(ctx);
      dispatch_float(dtype, ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        T* out = y.data<T>();
        const int64_t n = y.numel();
        if (dist == Dist::Normal) {
          std::normal_distribution<double> normal(a, b);
          for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(normal(g));
        } else {
          for (int64_t i = 0; i < n; ++i) {
            // Rounding to T may reach `high`, which the half-open interval excludes.
            T v = static_cast<T>(a + (b - a) * uniform01(g));
            out[i] = (v >= static_cast<T>(b) && b > a) ? std::nextafter(static_cast<T>(b), static_cast<T>(a)) : v;
          }
        }
      });
    });
  };
}

// Bernoulli (opset 15): y[i] = 1 with probability input[i].
std::unique_ptr<Kernel> make_bernoulli(const Node& node, const std::vector<InputInfo>& in) {
  if (in.empty() || !in[0].present) fail(node, "requires input 'input'");
  dispatch_float(in[0].dtype, node, [](auto) {});
  DType out_type = node.has_attr("dtype") ? static_cast<DType>(node.attr_int("dtype")) : in[0].dtype;
  dispatch_all(out_type, node, [](auto) {});
  return make_function_kernel([gen = Generator(node), out_type](KernelContext& ctx) mutable {
    const Tensor& p = ctx.input(0);
    Tensor& y = ctx.output(0, out_type, p.shape());
    std::mt19937_64& g = gen.get(ctx);
    dispatch_float(p.dtype(), ctx.node(), [&](auto ptag) {
      const auto* prob = p.data<decltype(ptag)>();
      dispatch_all(out_type, ctx.node(), [&](auto otag) {
        using O = decltype(otag);
        O* out = y.data<O>();
        for (int64_t i = 0, n = p.numel(); i < n; ++i) out[i] = static_cast<O>(uniform01(g) < prob[i]);
      });
    });
  });
}

// Multinomial (opset 7): `sample_size` class indices per row of unnormalised log-probabilities.
std::unique_ptr<Kernel> make_multinomial(const Node& node, const std::vector<InputInfo>& in) {
  if (in.empty() || !in[0].present) fail(node, "requires input 'input'");
  dispatch_float(in[0].dtype, node, [](auto) {});
  if (in[0].shape.size() != 2)
    fail_shape(node, "input must be [batch_size, class_size], got " + shape_str(in[0].shape));
  if (in[0].shape[1] < 1) fail_shape(node, "class_size must be >= 1");
  const int64_t samples = node.attr_int("sample_size", 1);
  if (samples < 0) fail(node, "sample_size must be >= 0");
  const auto out_type = static_cast<DType>(node.attr_int("dtype", static_cast<int64_t>(DType::Int32)));
  if (out_type != DType::Int32 && out_type != DType::Int64) fail(node, "dtype must be int32 or int64");
  return make_function_kernel([gen = Generator(node), samples, out_type](KernelContext& ctx) mutable {
    const Tensor& x = ctx.input(0);
    const int64_t batch = x.dim(0), classes = x.dim(1);
    Tensor& y = ctx.output(0, out_type, {batch, samples});
    std::mt19937_64& g = gen.get(ctx);
    std::vector<double> x_values = x.as_double(), cdf(static_cast<size_t>(classes));
    for (int64_t b = 0; b < batch; ++b) {
      const double* row = x_values.data() + b * classes;
      const double top = *std::max_element(row, row + classes);
      double total = 0;
      for (int64_t c = 0; c < classes; ++c) cdf[c] = total += std::exp(row[c] - top);
      if (!(total > 0) || !std::isfinite(total))
        fail(ctx.node(), "row " + std::to_string(b) + " has no finite positive probability");
      for (int64_t s = 0; s < samples; ++s) {
        const double u = uniform01(g) * total;
        int64_t c = std::upper_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
        c = std::min(c, classes - 1);
        if (out_type == DType::Int32)
          y.data<int32_t>()[b * samples + s] = static_cast<int32_t>(c);
        else
          y.data<int64_t>()[b * samples + s] = c;
      }
    }
  });
}

// ai.onnxtrain.DropoutGrad(dY, mask, [ratio], [training_mode]) -> dX = dY * mask / (1 - ratio)
// (0 for ratio 1), attribute ratio (used when the ratio input is absent). The optional
// training_mode input (opset 12+) makes it the identity when false, as the forward is.
// The mask is bool (opset 10+) or X's type (before 10).
std::unique_ptr<Kernel> make_dropout_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "requires inputs dY and mask");
  dispatch_float(in[0].dtype, node, [](auto) {});
  if (in[1].shape != in[0].shape) fail_shape(node, "mask shape " + shape_str(in[1].shape) + " differs from dY's");
  if (in[1].dtype != DType::Bool && in[1].dtype != in[0].dtype) fail(node, "mask must be bool or dY's type");
  const double attr_ratio = node.attr_float("ratio", 0.5f);
  return make_function_kernel([attr_ratio](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& mask = ctx.input(1);
    const double ratio = ctx.has_input(2) ? first_ratio(ctx.input(2)) : attr_ratio;
    const bool training = !ctx.has_input(3) || ctx.input(3).data<bool>()[0];
    if (!training || ratio == 0.0) {
      ctx.set_output(0, dy);
      return;
    }
    Tensor& dx = ctx.output(0, dy.dtype(), dy.shape());
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T scale = ratio < 1.0 ? static_cast<T>(1.0 / (1.0 - ratio)) : T(0);
      const T* g = dy.data<T>();
      T* out = dx.data<T>();
      const int64_t n = dy.numel();
      if (mask.dtype() == DType::Bool) {
        const bool* m = mask.data<bool>();
        parallel_for(n, [&](int64_t i) { out[i] = m[i] ? g[i] * scale : T(0); });
      } else {
        const T* m = mask.data<T>();
        parallel_for(n, [&](int64_t i) { out[i] = g[i] * m[i] * scale; });
      }
    });
  });
}

// Dropout: identity when the node never trains (opsets 7-11; is_test=1 before 7; no
// training_mode input from 12), otherwise DropoutGrad on the mask the forward saves
// (output 1, created when the model omitted it). ratio and training_mode are not
// differentiable (the mask jumps with the ratio).
void dropout_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  // The mask (float before opset 10) does not depend on X: its gradient contributes zero.
  bool may_train;
  if (node.opset < 7)
    may_train = node.attr_int("is_test", 0) == 0;
  else if (node.opset < 12)
    may_train = false;
  else
    may_train = node.has_input(2);
  if (!may_train) {
    b.GI(0, b.GO(0));
    return;
  }
  Value* x = b.I(0);
  Value* mask = b.saved_output(1, node.opset < 10 ? x->dtype : DType::Bool);
  std::vector<Value*> inputs{b.GO(0), mask};
  if (node.opset >= 12) {
    inputs.push_back(node.has_input(1) ? b.I(1) : nullptr);
    inputs.push_back(b.I(2));
  }
  b.GI(0, b.train_op("DropoutGrad", inputs, {{"ratio", node.attr_float("ratio", 0.5f)}}));
}

}  // namespace

void register_random_ops(Registry& r) {
  r.add({"", "Dropout", 1, INT_MAX,
         [](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
           return std::make_unique<DropoutKernel>(node, in);
         },
         "own", dropout_gradient, {1, 2}});
  r.add({graph::kTrainingDomain, "DropoutGrad", 1, INT_MAX, make_dropout_grad, "own"});
  // Samples do not depend differentiably on their inputs (the *Like ops read only the
  // input's shape and type; Bernoulli/Multinomial draw discrete values).
  r.add({"", "RandomNormal", 1, INT_MAX, random_factory(Dist::Normal, false), "own", {}, {}, true});
  r.add({"", "RandomUniform", 1, INT_MAX, random_factory(Dist::Uniform, false), "own", {}, {}, true});
  r.add({"", "RandomNormalLike", 1, INT_MAX, random_factory(Dist::Normal, true), "own", {}, {}, true});
  r.add({"", "RandomUniformLike", 1, INT_MAX, random_factory(Dist::Uniform, true), "own", {}, {}, true});
  r.add({"", "Bernoulli", 15, INT_MAX, make_bernoulli, "own", {}, {}, true});
  r.add({"", "Multinomial", 7, INT_MAX, make_multinomial, "own", {}, {}, true});
}

}  // namespace onnxtrain::ops
