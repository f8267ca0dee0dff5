// ai.onnxtrain ClipGradNorm: torch.nn.utils.clip_grad_norm_ as a node of the training
// graph, between the gradients and the optimizer update.
//   inputs  G_1..G_k (float/double gradients)
//   outputs G'_1..G'_k (G scaled by the clip coefficient when it is below 1, else G itself),
//           total_norm (double scalar, the norm before clipping)
//   attributes max_norm (float, >= 0), norm_type (float, > 0 or inf; default 2)
// The norm helpers are shared with the public clipping functions.
#include "ops/clip_grad.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

// Elements per reduction block. Fixed (not derived from the thread count), so the partial
// sums, and their ordered combination, do not depend on how many threads run.
constexpr int64_t kBlock = 8192;

struct Block {
  const Tensor* tensor;
  int64_t begin, end;
};

std::vector<Block> blocks_of(const std::vector<const Tensor*>& grads, const char* what) {
  std::vector<Block> blocks;
  for (const Tensor* g : grads) {
    if (!g || !g->defined()) continue;
    if (g->dtype() != DType::Float && g->dtype() != DType::Double)
      throw DataError(std::string(what) + ": gradients must be float or double, got " + dtype_name(g->dtype()));
    for (int64_t b = 0; b < g->numel(); b += kBlock) blocks.push_back({g, b, std::min(g->numel(), b + kBlock)});
  }
  return blocks;
}

enum class NormKind { One, Two, Inf, P };

template <typename T>
double block_reduce(const T* x, int64_t begin, int64_t end, NormKind kind, double p) {
  double acc = 0;
  switch (kind) {
    case NormKind::One:
      for (int64_t i = begin; i < end; ++i) acc += std::abs(static_cast<double>(x[i]));
      break;
    case NormKind::Two:
      for (int64_t i = begin; i < end; ++i) {
        const double v = x[i];
        acc += v * v;
      }
      break;
    case NormKind::Inf:
      for (int64_t i = begin; i < end; ++i) {
        const double v = std::abs(static_cast<double>(x[i]));
        if (v > acc || std::isnan(v)) acc = std::isnan(acc) ? acc : v;
      }
      break;
    case NormKind::P:
      for (int64_t i = begin; i < end; ++i) acc += std::pow(std::abs(static_cast<double>(x[i])), p);
      break;
  }
  return acc;
}

double block_reduce(const Block& b, NormKind kind, double p) {
  if (b.tensor->dtype() == DType::Float) return block_reduce(b.tensor->data<float>(), b.begin, b.end, kind, p);
  return block_reduce(b.tensor->data<double>(), b.begin, b.end, kind, p);
}

template <typename T>
void for_blocks(const Tensor& t, T fn) {
  const int64_t blocks = (t.numel() + kBlock - 1) / kBlock;
  parallel_for(blocks, [&](int64_t b) { fn(b * kBlock, std::min(t.numel(), (b + 1) * kBlock)); }, 2);
}

std::unique_ptr<Kernel> make_clip_grad_norm(const Node& node, const std::vector<InputInfo>& in) {
  const double max_norm = node.attr_float("max_norm", -1.f);
  const double norm_type = node.attr_float("norm_type", 2.f);
  if (!(max_norm >= 0)) fail(node, "needs attribute max_norm >= 0");
  if (node.outputs.size() != in.size() + 1)
    fail(node, "has " + std::to_string(in.size()) + " gradients, so it has " + std::to_string(in.size() + 1) +
                   " outputs (the clipped gradients, then the total norm), got " + std::to_string(node.outputs.size()));
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].present) fail(node, "input " + std::to_string(i) + " is missing");
    if (in[i].dtype != DType::Float && in[i].dtype != DType::Double)
      fail(node, "gradient " + std::to_string(i) + " must be float or double, got " + dtype_name(in[i].dtype));
  }
  return make_function_kernel([=](KernelContext& ctx) {
    const size_t k = ctx.num_inputs();
    std::vector<const Tensor*> grads;
    for (size_t i = 0; i < k; ++i) grads.push_back(&ctx.input(i));
    const double total = gradient_norm(grads, norm_type, ctx.node().describe().c_str());
    const double coefficient = clip_coefficient(max_norm, total);
    for (size_t i = 0; i < k; ++i) {
      if (!clip_scales(coefficient)) {
        ctx.set_output(i, ctx.input(i));  // a factor of 1 is a no-op: pass the gradient on
        continue;
      }
      scale_gradient(ctx.input(i), ctx.output(i, ctx.input(i).dtype(), ctx.input(i).shape()), coefficient);
    }
    ctx.output(k, DType::Double, {}).data<double>()[0] = total;
  });
}

}  // namespace

double gradient_norm(const std::vector<const Tensor*>& grads, double norm_type, const char* what) {
  if (!(norm_type > 0))
    throw DataError(std::string(what) + ": norm_type must be > 0 or inf, got " + std::to_string(norm_type));
  const std::vector<Block> blocks = blocks_of(grads, what);
  const NormKind kind = std::isinf(norm_type) ? NormKind::Inf
                        : norm_type == 1      ? NormKind::One
                        : norm_type == 2      ? NormKind::Two
                                              : NormKind::P;
  std::vector<double> partial(blocks.size(), 0.0);
  parallel_for(static_cast<int64_t>(blocks.size()), [&](int64_t i) { partial[i] = block_reduce(blocks[i], kind, norm_type); },
               2);
  double total = 0;
  for (double v : partial) {
    if (kind == NormKind::Inf) {
      if (v > total || std::isnan(v)) total = std::isnan(total) ? total : v;
    } else {
      total += v;
    }
  }
  switch (kind) {
    case NormKind::One:
    case NormKind::Inf:
      return total;
    case NormKind::Two:
      return std::sqrt(total);
    case NormKind::P:
      return std::pow(total, 1.0 / norm_type);
  }
  return total;
}

double clip_coefficient(double max_norm, double total_norm) { return max_norm / (total_norm + 1e-6); }

// torch multiplies by clamp(clip_coef, max=1), which keeps NaN; a factor of 1 is a no-op.
bool clip_scales(double coefficient) { return coefficient < 1 || std::isnan(coefficient); }

void scale_gradient(const Tensor& src, Tensor& dst, double coefficient) {
  auto run = [&](const auto* s, auto* d) {
    using T = std::remove_reference_t<decltype(*d)>;
    const T c = static_cast<T>(coefficient);
    for_blocks(src, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) d[j] = s[j] * c;
    });
  };
  if (src.dtype() == DType::Float) run(src.data<float>(), dst.data<float>());
  else run(src.data<double>(), dst.data<double>());
}

void clamp_gradient(Tensor& grad, double clip_value) {
  auto run = [&](auto* x) {
    using T = std::remove_reference_t<decltype(*x)>;
    const T hi = static_cast<T>(clip_value), lo = -hi;
    for_blocks(grad, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        // NaN compares false both ways and is kept, like torch.clamp.
        if (x[j] < lo)
          x[j] = lo;
        else if (x[j] > hi)
          x[j] = hi;
      }
    });
  };
  if (grad.dtype() == DType::Float) run(grad.data<float>());
  else run(grad.data<double>());
}

void register_clip_grad_ops(Registry& r) {
  r.add({graph::kTrainingDomain, "ClipGradNorm", 1, INT_MAX, make_clip_grad_norm, "own", {}, {}, true});
}

}  // namespace onnxtrain::ops
