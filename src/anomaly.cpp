#include "src/anomaly.h"

#include <cmath>
#include <string>

#include "onnxtrain/errors.h"

namespace onnxtrain {
namespace {

// Index of the first NaN or Inf, or -1.
template <typename T>
int64_t first_non_finite(const Tensor& t) {
  const T* p = t.data<T>();
  for (int64_t i = 0, n = t.numel(); i < n; ++i)
    if (!std::isfinite(p[i])) return i;
  return -1;
}

int64_t first_non_finite_any(const Tensor& t) {
  if (!t.defined()) return -1;
  if (t.dtype() == DType::Float) return first_non_finite<float>(t);
  if (t.dtype() == DType::Double) return first_non_finite<double>(t);
  return -1;
}

double element(const Tensor& t, int64_t i) {
  return t.dtype() == DType::Float ? t.data<float>()[i] : t.data<double>()[i];
}

}  // namespace

void check_finite(const graph::Node& node, size_t output, const Tensor& value, const std::vector<const Tensor*>& inputs) {
  const int64_t bad = first_non_finite_any(value);
  if (bad < 0) return;
  std::string msg = "anomaly: " + node.describe() + " produced " + std::to_string(element(value, bad)) + " in output '" +
                    node.outputs[output]->name + "' " + shape_str(value.shape()) + " at element " + std::to_string(bad);
  std::string from;
  for (size_t i = 0; i < inputs.size() && i < node.inputs.size(); ++i)
    if (inputs[i] && node.inputs[i] && first_non_finite_any(*inputs[i]) >= 0)
      from += (from.empty() ? "" : ", ") + ("'" + node.inputs[i]->name + "'");
  msg += from.empty() ? "; its inputs were finite" : "; its input " + from + " already was not finite";
  throw NonFiniteLoss(msg);
}

}  // namespace onnxtrain
