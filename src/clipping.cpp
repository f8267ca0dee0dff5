#include "onnxtrain/clipping.h"

#include <algorithm>
#include <cmath>

#include "onnxtrain/errors.h"
#include "ops/op_utils.h"

namespace onnxtrain {

namespace {

// Elements per reduction block. Fixed (not derived from the thread count), so the partial
// sums, and their ordered combination, do not depend on how many threads run.
constexpr int64_t kBlock = 8192;

struct Block {
  Tensor* tensor;
  int64_t begin, end;
};

std::vector<Block> blocks_of(const std::vector<Tensor*>& grads, const char* what) {
  std::vector<Block> blocks;
  for (Tensor* g : grads) {
    if (!g || !g->defined()) continue;
    if (g->dtype() != DType::Float && g->dtype() != DType::Double)
      throw DataError(std::string(what) + ": gradients must be float or double, got " + dtype_name(g->dtype()));
    for (int64_t b = 0; b < g->numel(); b += kBlock) blocks.push_back({g, b, std::min(g->numel(), b + kBlock)});
  }
  return blocks;
}

// Calls f(T* data, begin, end) with the block's element type.
template <typename F>
void with_block(const Block& b, F&& f) {
  if (b.tensor->dtype() == DType::Float)
    f(b.tensor->data<float>(), b.begin, b.end);
  else
    f(b.tensor->data<double>(), b.begin, b.end);
}

enum class NormKind { One, Two, Inf, P };

double block_reduce(const Block& block, NormKind kind, double p) {
  double acc = 0;
  with_block(block, [&](auto* x, int64_t begin, int64_t end) {
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
  });
  return acc;
}

double norm_of_blocks(const std::vector<Block>& blocks, double norm_type, const char* what) {
  if (!(norm_type > 0))
    throw DataError(std::string(what) + ": norm_type must be > 0 or inf, got " + std::to_string(norm_type));
  const NormKind kind = std::isinf(norm_type) ? NormKind::Inf
                        : norm_type == 1      ? NormKind::One
                        : norm_type == 2      ? NormKind::Two
                                              : NormKind::P;
  const int64_t n = static_cast<int64_t>(blocks.size());
  std::vector<double> partial(blocks.size(), 0.0);
  ops::parallel_for(n, [&](int64_t i) { partial[i] = block_reduce(blocks[i], kind, norm_type); }, 2);
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

std::vector<Tensor*> pointers(std::map<std::string, Tensor>& grads) {
  std::vector<Tensor*> out;
  out.reserve(grads.size());
  for (auto& [name, g] : grads) out.push_back(&g);
  return out;
}

}  // namespace

double grad_norm(const std::vector<const Tensor*>& grads, double norm_type) {
  // Reading only: the blocks hold non-const pointers for sharing code with the scaling.
  std::vector<Tensor*> mutable_grads;
  for (const Tensor* g : grads) mutable_grads.push_back(const_cast<Tensor*>(g));
  return norm_of_blocks(blocks_of(mutable_grads, "grad_norm"), norm_type, "grad_norm");
}

double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm, double norm_type, bool error_if_nonfinite) {
  if (!(max_norm >= 0))
    throw DataError("clip_grad_norm: max_norm must be >= 0, got " + std::to_string(max_norm));
  const std::vector<Block> blocks = blocks_of(grads, "clip_grad_norm");
  const double total_norm = norm_of_blocks(blocks, norm_type, "clip_grad_norm");
  if (error_if_nonfinite && !std::isfinite(total_norm))
    throw DataError("clip_grad_norm: the total norm of order " + std::to_string(norm_type) +
                    " of the gradients is " + std::to_string(total_norm) + ", so they cannot be clipped");
  const double clip_coef = max_norm / (total_norm + 1e-6);
  // torch multiplies by clamp(clip_coef, max=1), which keeps NaN; a factor of 1 is a no-op.
  if (clip_coef < 1 || std::isnan(clip_coef)) {
    ops::parallel_for(static_cast<int64_t>(blocks.size()), [&](int64_t i) {
      with_block(blocks[i], [&](auto* x, int64_t begin, int64_t end) {
        using T = std::remove_reference_t<decltype(*x)>;
        const T c = static_cast<T>(clip_coef);
        for (int64_t j = begin; j < end; ++j) x[j] *= c;
      });
    }, 2);
  }
  return total_norm;
}

double clip_grad_norm(std::map<std::string, Tensor>& grads, double max_norm, double norm_type, bool error_if_nonfinite) {
  return clip_grad_norm(pointers(grads), max_norm, norm_type, error_if_nonfinite);
}

void clip_grad_value(const std::vector<Tensor*>& grads, double clip_value) {
  if (!(clip_value >= 0))
    throw DataError("clip_grad_value: clip_value must be >= 0, got " + std::to_string(clip_value));
  const std::vector<Block> blocks = blocks_of(grads, "clip_grad_value");
  ops::parallel_for(static_cast<int64_t>(blocks.size()), [&](int64_t i) {
    with_block(blocks[i], [&](auto* x, int64_t begin, int64_t end) {
      using T = std::remove_reference_t<decltype(*x)>;
      const T hi = static_cast<T>(clip_value), lo = -hi;
      for (int64_t j = begin; j < end; ++j) {
        // NaN compares false both ways and is kept, like torch.clamp.
        if (x[j] < lo)
          x[j] = lo;
        else if (x[j] > hi)
          x[j] = hi;
      }
    });
  }, 2);
}

void clip_grad_value(std::map<std::string, Tensor>& grads, double clip_value) {
  clip_grad_value(pointers(grads), clip_value);
}

}  // namespace onnxtrain
