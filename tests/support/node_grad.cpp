#include "tests/support/node_grad.h"

#include <algorithm>
#include <numeric>
#include <random>

namespace onnxtrain::test::node_grad {

std::string type_name(DType t) {
  switch (t) {
    case DType::Double: return "double";
    case DType::Float: return "float";
    case DType::Int64: return "int64";
    default: return "?";
  }
}

std::string dims_text(const Shape& s) {
  if (s.empty()) return "";
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
  return r + "]";
}

Tensor distinct_tensor(DType dtype, const Shape& shape, uint64_t seed) {
  Tensor t = test::random_tensor(dtype, shape, seed);
  std::vector<int64_t> perm(static_cast<size_t>(t.numel()));
  std::iota(perm.begin(), perm.end(), 0);
  std::mt19937_64 rng(seed);
  std::shuffle(perm.begin(), perm.end(), rng);
  const double mid = static_cast<double>(t.numel()) / 2;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = (static_cast<double>(perm[static_cast<size_t>(i)]) - mid) * 0.05;
    if (dtype == DType::Double) t.data<double>()[i] = v;
    else t.data<float>()[i] = static_cast<float>(v);
  }
  return t;
}

std::string check(DType dtype, const std::string& node_text, const std::vector<In>& ins, size_t y_rank,
                  std::vector<std::string> wrt, int opset) {
  GradCase c;
  std::string sig;
  uint64_t seed = 11;
  for (const auto& in : ins) {
    const DType t = in.value && !is_floating(in.value->dtype()) ? in.value->dtype() : dtype;
    sig += (sig.empty() ? "" : ", ") + type_name(t) + dims_text(in.value ? in.value->shape() : in.shape) + " " + in.name;
    Tensor v;
    if (in.value) {
      v = in.value->dtype() == dtype || !is_floating(in.value->dtype()) ? in.value->clone() : Tensor();
      if (is_floating(in.value->dtype()) && in.value->dtype() != dtype) {
        v = Tensor(dtype, in.value->shape());
        for (int64_t i = 0; i < v.numel(); ++i) {
          const double x = in.value->dtype() == DType::Double ? in.value->data<double>()[i] : in.value->data<float>()[i];
          if (dtype == DType::Double) v.data<double>()[i] = x;
          else v.data<float>()[i] = static_cast<float>(x);
        }
      }
    } else if (in.distinct) {
      v = distinct_tensor(dtype, in.shape, seed);
    } else if (in.away_from_zero) {
      v = test::random_away_from(dtype, in.shape, seed, {0.0}, 0.2);
    } else {
      v = test::random_tensor(dtype, in.shape, seed);
    }
    ++seed;
    c.inputs[in.name] = v;
  }
  std::string y = type_name(dtype);
  for (size_t i = 0; i < y_rank; ++i) y += (i ? ",y" : "[y") + std::to_string(i);
  if (y_rank) y += "]";
  c.model_text = "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) + "]> g (" + sig + ") => (" + y +
                 " Y) { " + (node_text.rfind("Y, ", 0) == 0 ? "" : "Y = ") + node_text + " }";
  c.wrt = std::move(wrt);
  if (dtype == DType::Float) {
    c.four_point = true;
    c.eps = 1e-2;
    c.rtol = 2e-2;
    c.atol = 2e-3;
  }
  return check_gradients(c);
}

}  // namespace onnxtrain::test::node_grad
