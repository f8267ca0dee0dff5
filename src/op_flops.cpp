#include "src/op_flops.h"

namespace onnxtrain {

namespace {

double product(const Shape& shape, size_t from = 0) {
  double p = 1;
  for (size_t i = from; i < shape.size(); ++i) p *= static_cast<double>(shape[i]);
  return p;
}

}  // namespace

double forward_flops(const graph::Node& node, const std::vector<const Tensor*>& inputs,
                     const std::vector<Tensor>& outputs) {
  if (node.domain != graph::kOnnxDomain) return 0;
  auto in = [&](size_t i) { return i < inputs.size() ? inputs[i] : nullptr; };
  const Tensor* x = in(0);
  const Tensor* w = in(1);
  if (!x || !w || outputs.empty() || !outputs[0].defined()) return 0;
  const Tensor& y = outputs[0];
  const std::string& op = node.op_type;
  // Each output element of a convolution is a dot product over W's [C/group, k...].
  if (op == "Conv") return 2 * product(y.shape()) * product(w->shape(), 1);
  // ConvTranspose scatters each input element over W's [C_out/group, k...].
  if (op == "ConvTranspose") return 2 * product(x->shape()) * product(w->shape(), 1);
  if (op == "MatMul") {
    const double k = x->rank() == 0 ? 1 : static_cast<double>(x->shape().back());
    return 2 * product(y.shape()) * k;
  }
  if (op == "Gemm") {
    if (x->rank() != 2) return 0;
    const double k = static_cast<double>(node.attr_int("transA", 0) ? x->dim(0) : x->dim(1));
    return 2 * product(y.shape()) * k;
  }
  if (op == "RNN" || op == "GRU" || op == "LSTM") {
    // W [dirs, gates*H, I] and R [dirs, gates*H, H], applied once per (time step, sample).
    const Tensor* r = in(2);
    if (!r || x->rank() != 3) return 0;
    const double steps = static_cast<double>(x->dim(0)) * static_cast<double>(x->dim(1));
    return 2 * steps * (product(w->shape()) + product(r->shape()));
  }
  return 0;
}

}  // namespace onnxtrain
