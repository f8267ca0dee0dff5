#include "onnxtrain/clipping.h"

#include <cmath>

#include "onnxtrain/errors.h"
#include "ops/clip_grad.h"

namespace onnxtrain {

namespace {

std::vector<const Tensor*> readable(const std::vector<Tensor*>& grads) { return {grads.begin(), grads.end()}; }

std::vector<Tensor*> pointers(std::map<std::string, Tensor>& grads) {
  std::vector<Tensor*> out;
  out.reserve(grads.size());
  for (auto& [name, g] : grads) out.push_back(&g);
  return out;
}

}  // namespace

double grad_norm(const std::vector<const Tensor*>& grads, double norm_type) {
  return ops::gradient_norm(grads, norm_type, "grad_norm");
}

double clip_grad_norm(const std::vector<Tensor*>& grads, double max_norm, double norm_type, bool error_if_nonfinite) {
  if (!(max_norm >= 0))
    throw DataError("clip_grad_norm: max_norm must be >= 0, got " + std::to_string(max_norm));
  const double total_norm = ops::gradient_norm(readable(grads), norm_type, "clip_grad_norm");
  if (error_if_nonfinite && !std::isfinite(total_norm))
    throw DataError("clip_grad_norm: the total norm of order " + std::to_string(norm_type) +
                    " of the gradients is " + std::to_string(total_norm) + ", so they cannot be clipped");
  const double coefficient = ops::clip_coefficient(max_norm, total_norm);
  if (ops::clip_scales(coefficient))
    for (Tensor* g : grads)
      if (g && g->defined()) ops::scale_gradient(*g, *g, coefficient);
  return total_norm;
}

double clip_grad_norm(std::map<std::string, Tensor>& grads, double max_norm, double norm_type, bool error_if_nonfinite) {
  return clip_grad_norm(pointers(grads), max_norm, norm_type, error_if_nonfinite);
}

void clip_grad_value(const std::vector<Tensor*>& grads, double clip_value) {
  if (!(clip_value >= 0))
    throw DataError("clip_grad_value: clip_value must be >= 0, got " + std::to_string(clip_value));
  for (Tensor* g : grads) {
    if (!g || !g->defined()) continue;
    if (g->dtype() != DType::Float && g->dtype() != DType::Double)
      throw DataError("clip_grad_value: gradients must be float or double, got " + dtype_name(g->dtype()));
  }
  for (Tensor* g : grads)
    if (g && g->defined()) ops::clamp_gradient(*g, clip_value);
}

void clip_grad_value(std::map<std::string, Tensor>& grads, double clip_value) {
  clip_grad_value(pointers(grads), clip_value);
}

}  // namespace onnxtrain
