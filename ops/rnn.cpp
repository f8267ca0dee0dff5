// Recurrent layers: RNN, GRU and LSTM (opsets 1, 3, 7 and 14). float32 runs on oneDNN's RNN
// primitives when the node is a configuration oneDNN has (its fixed activations, no clip, no
// coupled input/forget gate, every sequence at full length); everything else, and double,
// runs on the reference loops below, which follow the whole ONNX spec.
//
// Gradients: one ai.onnxtrain RNNGrad / GRUGrad / LSTMGrad node per forward node. On the same
// oneDNN configurations it reruns the forward in forward_training mode (for the workspace)
// and then the backward primitive; otherwise, and for double, backpropagation through time
// over the ONNX formulas (reference loops, per-step records of the recomputed forward).
// The gradient rule is below; the backward kernels are in rnn_grad.cpp (which registers
// them), what both files share in rnn_common.h.
//
// ONNX vs oneDNN, the facts this file maps between:
//   ONNX W [dirs, G*H, I], R [dirs, G*H, H], gates stacked along rows; oneDNN weights
//   {layers, dirs, I|H, G, H} (ldigo, then whatever layout the primitive prefers).
//   Gate order: ONNX LSTM i,o,f,c (peepholes i,o,f); oneDNN i,f,c,o (peepholes i,f,o).
//   GRU: ONNX z,r,h = oneDNN u,r,o. ONNX has input and recurrence biases per gate (B =
//   [Wb, Rb]); oneDNN one bias per gate, except linear-before-reset GRU, whose 4th bias row is
//   the recurrence bias of the candidate gate (it sits inside the reset product).
//   Y: ONNX [T, dirs, N, H] (layout 1: [N, T, dirs, H]); oneDNN [T, N, dirs*H].
#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <variant>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/registry.h"
#include "ops/rnn_common.h"

namespace onnxtrain::ops {

namespace rnn_impl {

struct ActivationSpec {
  const char* name;  // lower case; ONNX names are matched case-insensitively like other runtimes
  ActKind kind;
  bool uses_alpha;
  float default_alpha;
  bool uses_beta;
  float default_beta;
};

// Defaults are those of the ONNX operators of the same name, as the spec asks.
constexpr ActivationSpec kActivationSpecs[] = {
    {"relu", ActKind::Relu, false, 0.f, false, 0.f},
    {"tanh", ActKind::Tanh, false, 0.f, false, 0.f},
    {"sigmoid", ActKind::Sigmoid, false, 0.f, false, 0.f},
    {"affine", ActKind::Affine, true, 1.f, true, 0.f},
    {"leakyrelu", ActKind::LeakyRelu, true, 0.01f, false, 0.f},
    {"thresholdedrelu", ActKind::ThresholdedRelu, true, 1.f, false, 0.f},
    {"scaledtanh", ActKind::ScaledTanh, true, 1.f, true, 1.f},
    {"hardsigmoid", ActKind::HardSigmoid, true, 0.2f, true, 0.5f},
    {"elu", ActKind::Elu, true, 1.f, false, 0.f},
    {"softsign", ActKind::Softsign, false, 0.f, false, 0.f},
    {"softplus", ActKind::Softplus, false, 0.f, false, 0.f},
};

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return s;
}

// activation_alpha/beta are consumed in list order by the activations that take the
// parameter (as onnxruntime does); the others keep their operator defaults.
std::vector<Activation> parse_activations(const Node& node, const RnnConfig& c) {
  std::vector<std::string> names;
  if (node.has_attr("activations")) {
    names = node.attr_strings("activations");
  } else if (c.cell == CellKind::Rnn) {
    names = {"Tanh"};
  } else if (c.cell == CellKind::Gru) {
    names = {"Sigmoid", "Tanh"};
  } else {
    names = {"Sigmoid", "Tanh", "Tanh"};
  }
  const size_t per_dir = static_cast<size_t>(c.acts_per_dir);
  if (names.size() != per_dir && names.size() != per_dir * c.dirs)
    fail(node, "activations has " + std::to_string(names.size()) + " entries, expected " + std::to_string(per_dir) +
                   (c.dirs == 2 ? " or " + std::to_string(2 * per_dir) : std::string()));
  std::vector<float> alphas = node.attr_floats("activation_alpha"), betas = node.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  std::vector<Activation> acts;
  for (const std::string& name : names) {
    const std::string key = lower(name);
    auto spec = std::find_if(std::begin(kActivationSpecs), std::end(kActivationSpecs),
                             [&](const ActivationSpec& s) { return key == s.name; });
    if (spec == std::end(kActivationSpecs)) fail(node, "unknown activation function '" + name + "'");
    Activation a{spec->kind, spec->default_alpha, spec->default_beta};
    if (spec->uses_alpha && next_alpha < alphas.size()) a.alpha = alphas[next_alpha++];
    if (spec->uses_beta && next_beta < betas.size()) a.beta = betas[next_beta++];
    acts.push_back(a);
  }
  // One list given for a bidirectional node applies to both directions.
  if (acts.size() < per_dir * c.dirs) acts.insert(acts.end(), acts.begin(), acts.end());
  return acts;
}

void expect_shape(const Node& node, const std::vector<InputInfo>& in, int index, const char* name, const Shape& want,
                  DType dtype) {
  if (in[index].dtype != dtype)
    fail(node, std::string(name) + " has element type " + dtype_name(in[index].dtype) + ", expected " + dtype_name(dtype));
  if (in[index].shape != want)
    fail_shape(node, std::string(name) + " has shape " + shape_str(in[index].shape) + ", expected " + shape_str(want));
}

RnnConfig parse_config(CellKind cell, const Node& node, const std::vector<InputInfo>& in, bool grad) {
  RnnConfig c;
  c.cell = cell;
  c.gates = cell == CellKind::Rnn ? 1 : cell == CellKind::Gru ? 3 : 4;
  c.acts_per_dir = cell == CellKind::Rnn ? 1 : cell == CellKind::Gru ? 2 : 3;
  auto present = [&](int i) { return i < static_cast<int>(in.size()) && in[i].present; };
  if (!present(kX) || !present(kW) || !present(kR)) fail(node, "inputs X, W and R are required");
  if (cell != CellKind::Lstm && in.size() > kInitialH + 1) fail(node, "has more than 6 inputs");

  c.dtype = in[kX].dtype;
  if (c.dtype != DType::Float && c.dtype != DType::Double)
    fail(node, "does not support element type " + dtype_name(c.dtype));

  const std::string direction = node.attr_string("direction", "forward");
  if (direction == "bidirectional") {
    c.dirs = 2;
  } else if (direction == "reverse") {
    c.reverse = true;
  } else if (direction != "forward") {
    fail(node, "direction must be forward, reverse or bidirectional, got '" + direction + "'");
  }
  if (grad || node.opset >= 14) {
    const int64_t layout = node.attr_int("layout", 0);
    if (layout != 0 && layout != 1) fail(node, "layout must be 0 or 1, got " + std::to_string(layout));
    c.batch_first = layout == 1;
  }
  if (cell == CellKind::Gru && (grad || node.opset >= 3)) c.linear_before_reset = node.attr_int("linear_before_reset", 0) != 0;
  if (cell == CellKind::Lstm) c.input_forget = node.attr_int("input_forget", 0) != 0;
  if (node.has_attr("clip")) {
    c.clip = node.attr_float("clip", 0.f);
    if (!(c.clip > 0.f)) fail(node, "clip must be positive, got " + std::to_string(c.clip));
  }

  const Shape& xs = in[kX].shape;
  if (xs.size() != 3) fail_shape(node, "X must have rank 3, got shape " + shape_str(xs));
  c.seq = c.batch_first ? xs[1] : xs[0];
  c.batch = c.batch_first ? xs[0] : xs[1];
  c.input = xs[2];
  const Shape& rs = in[kR].shape;
  if (rs.size() != 3) fail_shape(node, "R must have rank 3, got shape " + shape_str(rs));
  c.hidden = node.has_attr("hidden_size") ? node.attr_int("hidden_size") : rs[2];
  if (c.hidden <= 0) fail(node, "hidden_size must be positive, got " + std::to_string(c.hidden));
  const int64_t gh = c.gates * c.hidden;

  expect_shape(node, in, kW, "W", {c.dirs, gh, c.input}, c.dtype);
  expect_shape(node, in, kR, "R", {c.dirs, gh, c.hidden}, c.dtype);
  c.has_bias = present(kB);
  if (c.has_bias) expect_shape(node, in, kB, "B", {c.dirs, 2 * gh}, c.dtype);
  c.has_lens = present(kSeqLens);
  if (c.has_lens) {
    if (in[kSeqLens].dtype != DType::Int32 && in[kSeqLens].dtype != DType::Int64)
      fail(node, "sequence_lens must be int32, got " + dtype_name(in[kSeqLens].dtype));
    if (in[kSeqLens].shape != Shape{c.batch})
      fail_shape(node, "sequence_lens has shape " + shape_str(in[kSeqLens].shape) + ", expected [" +
                           std::to_string(c.batch) + "]");
  }
  c.has_h0 = present(kInitialH);
  if (c.has_h0) expect_shape(node, in, kInitialH, "initial_h", c.state_shape(), c.dtype);
  if (cell == CellKind::Lstm) {
    c.has_c0 = present(kInitialC);
    if (c.has_c0) expect_shape(node, in, kInitialC, "initial_c", c.state_shape(), c.dtype);
    c.has_peephole = present(kPeephole);
    if (c.has_peephole) expect_shape(node, in, kPeephole, "P", {c.dirs, 3 * c.hidden}, c.dtype);
  }
  c.acts = parse_activations(node, c);

  if (grad) return c;
  c.want_y = node.has_output(kY);
  c.want_yh = node.has_output(kYh);
  c.want_yc = cell == CellKind::Lstm && node.has_output(kYc);
  if (cell != CellKind::Lstm && node.outputs.size() > 2) fail(node, "has more than 2 outputs");
  return c;
}

std::vector<int64_t> sequence_lengths(const RnnConfig& c, const KernelContext& ctx) {
  if (!c.has_lens) return std::vector<int64_t>(c.batch, c.seq);
  std::vector<int64_t> lens = ctx.input(kSeqLens).as_int64();
  for (int64_t len : lens)
    if (len < 0 || len > c.seq)
      fail(ctx.node(), "sequence_lens value " + std::to_string(len) + " is outside [0, " + std::to_string(c.seq) + "]");
  return lens;
}

// ---------------------------------------------------------------------------------------
// Reference implementation (the cell itself is in rnn_common.h).

// Runs every (direction, batch entry) recurrence independently, which is also what lets
// each entry stop at its own sequence length.
template <typename T>
void run_reference(const RnnConfig& c, KernelContext& ctx) {
  const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden, G = c.gates, GH = G * H;
  const std::vector<int64_t> lens = sequence_lengths(c, ctx);
  const T* x = ctx.input(kX).data<T>();
  const T* w = ctx.input(kW).data<T>();
  const T* r = ctx.input(kR).data<T>();
  const T* bias = c.has_bias ? ctx.input(kB).data<T>() : nullptr;
  const T* h0 = c.has_h0 ? ctx.input(kInitialH).data<T>() : nullptr;
  const T* c0 = c.has_c0 ? ctx.input(kInitialC).data<T>() : nullptr;
  const T* peep = c.has_peephole ? ctx.input(kPeephole).data<T>() : nullptr;
  T* y = c.want_y ? ctx.output(kY, c.dtype, c.y_shape()).data<T>() : nullptr;
  T* yh = c.want_yh ? ctx.output(kYh, c.dtype, c.state_shape()).data<T>() : nullptr;
  T* yc = c.want_yc ? ctx.output(kYc, c.dtype, c.state_shape()).data<T>() : nullptr;
  const StepRecord L(c);

  auto x_at = [&](int64_t t, int64_t b) { return x + (c.batch_first ? b * S + t : t * N + b) * I; };
  auto y_at = [&](int64_t t, int64_t d, int64_t b) { return y + (c.batch_first ? (b * S + t) * D + d : (t * D + d) * N + b) * H; };
  auto state_off = [&](int64_t d, int64_t b) { return (c.batch_first ? b * D + d : d * N + b) * H; };

  const int64_t work_per_item = S * GH * (I + H);
  parallel_for(
      D * N,
      [&](int64_t item) {
        const int64_t d = item / N, b = item % N, len = lens[b];
        const bool backwards = c.reverse || d == 1;
        const DirectionParams<T> p = direction_params(c, d, w, r, bias, peep);
        std::vector<T> h(H, T(0)), cell(H, T(0)), scratch(GH + 2 * H);
        if (h0) std::copy_n(h0 + state_off(d, b), H, h.begin());
        if (c0) std::copy_n(c0 + state_off(d, b), H, cell.begin());
        for (int64_t step = 0; step < len; ++step) {
          const int64_t t = backwards ? len - 1 - step : step;
          cell_step<T>(c, p, x_at(t, b), h.data(), cell.data(), scratch.data(), nullptr, L);
          if (y) std::copy_n(h.begin(), H, y_at(t, d, b));
        }
        if (y)
          for (int64_t t = len; t < S; ++t) std::fill_n(y_at(t, d, b), H, T(0));
        if (yh) std::copy_n(h.begin(), H, yh + state_off(d, b));
        if (yc) std::copy_n(cell.begin(), H, yc + state_off(d, b));
      },
      work_per_item >= (1 << 16) ? 2 : INT64_MAX);
}

std::unique_ptr<Kernel> make_reference_kernel(const RnnConfig& c) {
  return make_function_kernel([c](KernelContext& ctx) {
    dispatch_float(c.dtype, ctx.node(), [&](auto tag) { run_reference<decltype(tag)>(c, ctx); });
  });
}

// ---------------------------------------------------------------------------------------
// oneDNN implementation.

void swap_leading(const float* src, float* dst, int64_t A, int64_t B, int64_t C) {
  parallel_for(A * B, [&](int64_t ab) {
    const int64_t a = ab / B, b = ab % B;
    std::copy_n(src + ab * C, C, dst + (b * A + a) * C);
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)));
}

void weights_to_ldigo(const float* src, float* dst, int64_t D, int64_t G, int64_t H, int64_t K, const std::vector<int>& perm) {
  parallel_for(D * G * H, [&](int64_t row) {
    const int64_t d = row / (G * H), g = row / H % G, j = row % H;
    const float* s = src + ((d * G + perm[g]) * H + j) * K;
    float* o = dst + d * K * G * H + g * H + j;
    for (int64_t k = 0; k < K; ++k) o[k * G * H] = s[k];
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)));
}

void ldigo_to_weights(const float* src, float* dst, int64_t D, int64_t G, int64_t H, int64_t K, const std::vector<int>& perm) {
  parallel_for(D * G * H, [&](int64_t row) {
    const int64_t d = row / (G * H), g = row / H % G, j = row % H;
    const float* s = src + d * K * G * H + g * H + j;
    float* o = dst + ((d * G + perm[g]) * H + j) * K;
    for (int64_t k = 0; k < K; ++k) o[k] = s[k * G * H];
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)));
}

DnnlRnnSetup::DnnlRnnSetup(const RnnConfig& cfg, dnnl::prop_kind prop) : c(cfg) {
  using md = dnnl::memory::desc;
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden, G = c.gates;
  lbr = c.cell == CellKind::Gru && c.linear_before_reset;
  bias_gates = lbr ? G + 1 : G;
  if (c.cell == CellKind::Lstm) perm = {0, 2, 3, 1};  // oneDNN i,f,c,o from ONNX i,o,f,c
  else for (int g = 0; g < G; ++g) perm.push_back(g);

  src_layer = md({S, N, I}, dt::f32, tag::tnc);
  state = md({1, D, N, H}, dt::f32, tag::ldnc);
  dst_layer = md({S, N, D * H}, dt::f32, tag::tnc);
  w_layer_any = md({1, D, I, G, H}, dt::f32, tag::any);
  w_iter_any = md({1, D, H, G, H}, dt::f32, tag::any);
  w_layer = md({1, D, I, G, H}, dt::f32, tag::ldigo);
  w_iter = md({1, D, H, G, H}, dt::f32, tag::ldigo);
  bias = md({1, D, bias_gates, H}, dt::f32, tag::ldgo);
  if (c.has_peephole) peephole = md({1, D, 3, H}, dt::f32, tag::ldgo);
  dir = D == 2 ? dnnl::rnn_direction::bidirectional_concat
        : c.reverse ? dnnl::rnn_direction::unidirectional_right2left
                    : dnnl::rnn_direction::unidirectional_left2right;
  dnnl::engine& eng = cpu_engine();
  switch (c.cell) {
    case CellKind::Rnn: {
      const Activation& a = c.acts[0];
      activation = a.kind == ActKind::Tanh      ? dnnl::algorithm::eltwise_tanh
                   : a.kind == ActKind::Sigmoid ? dnnl::algorithm::eltwise_logistic
                                                : dnnl::algorithm::eltwise_relu;
      alpha = a.kind == ActKind::LeakyRelu ? a.alpha : 0.f;
      dnnl::vanilla_rnn_forward::desc desc(prop, activation, dir, src_layer, state, w_layer_any, w_iter_any, bias,
                                           dst_layer, state, dnnl::rnn_flags::undef, alpha);
      fwd_pd = dnnl::vanilla_rnn_forward::primitive_desc(desc, arena_scratchpad(), eng);
      break;
    }
    case CellKind::Gru:
      if (lbr) {
        dnnl::lbr_gru_forward::desc desc(prop, dir, src_layer, state, w_layer_any, w_iter_any, bias, dst_layer, state);
        fwd_pd = dnnl::lbr_gru_forward::primitive_desc(desc, arena_scratchpad(), eng);
      } else {
        dnnl::gru_forward::desc desc(prop, dir, src_layer, state, w_layer_any, w_iter_any, bias, dst_layer, state);
        fwd_pd = dnnl::gru_forward::primitive_desc(desc, arena_scratchpad(), eng);
      }
      break;
    case CellKind::Lstm: {
      dnnl::lstm_forward::desc desc(prop, dir, src_layer, state, state, w_layer_any, w_iter_any, peephole, bias,
                                    dst_layer, state, state);
      fwd_pd = dnnl::lstm_forward::primitive_desc(desc, arena_scratchpad(), eng);
      break;
    }
  }
  w_layer_t = Tensor(DType::Float, {D, I, G, H});
  w_iter_t = Tensor(DType::Float, {D, H, G, H});
  bias_t = Tensor(DType::Float, {D, bias_gates, H});  // stays zero when B is absent
  if (c.has_peephole) peephole_t = Tensor(DType::Float, {D, 3, H});

  w_layer_reorder = Reorderer(w_layer, fwd_arg(DNNL_ARG_WEIGHTS_LAYER));
  w_iter_reorder = Reorderer(w_iter, fwd_arg(DNNL_ARG_WEIGHTS_ITER));
  const dnnl::memory::desc ws = fwd_arg(DNNL_ARG_WORKSPACE);
  if (ws.get_size() > 0) workspace = dnnl::memory(ws, eng);
  if (c.batch_first) x_buf = Tensor(DType::Float, {S, N, I});
  if (c.batch_first || !c.has_h0) h0_buf = Tensor(DType::Float, {D, N, H});
  if (c.cell == CellKind::Lstm && (c.batch_first || !c.has_c0)) c0_buf = Tensor(DType::Float, {D, N, H});
}

void DnnlRnnSetup::load_weights(const KernelContext& ctx) {
  const int64_t D = c.dirs, I = c.input, H = c.hidden, G = c.gates, GH = G * H;
  weights_to_ldigo(ctx.input(kW).data<float>(), w_layer_t.data<float>(), D, G, H, I, perm);
  weights_to_ldigo(ctx.input(kR).data<float>(), w_iter_t.data<float>(), D, G, H, H, perm);
  if (c.has_bias) {
    const float* b = ctx.input(kB).data<float>();
    float* out = bias_t.data<float>();
    for (int64_t d = 0; d < D; ++d) {
      const float* wb = b + d * 2 * GH;
      const float* rb = wb + GH;
      float* o = out + d * bias_gates * H;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t src = perm[g] * H;
        // linear-before-reset GRU keeps the candidate's recurrence bias apart, as row G.
        const bool split = lbr && g == G - 1;
        for (int64_t j = 0; j < H; ++j) o[g * H + j] = wb[src + j] + (split ? 0.f : rb[src + j]);
        if (split) std::copy_n(rb + src, H, o + G * H);
      }
    }
  }
  if (c.has_peephole) {
    const float* p = ctx.input(kPeephole).data<float>();
    float* o = peephole_t.data<float>();
    for (int64_t d = 0; d < D; ++d)
      for (int g = 0; g < 3; ++g) std::copy_n(p + (d * 3 + kPeepholeFromOnnx[g]) * H, H, o + (d * 3 + g) * H);
  }
}

const Tensor& DnnlRnnSetup::load_state(const KernelContext& ctx, int index, bool present, Tensor& buf) const {
  if (!present) return buf;
  const Tensor& s = ctx.input(index);
  if (!c.batch_first) return s;
  swap_leading(s.data<float>(), buf.data<float>(), c.batch, c.dirs, c.hidden);
  return buf;
}

void DnnlRnnSetup::bind_forward_inputs(const KernelContext& ctx, std::unordered_map<int, dnnl::memory>& args) {
  load_weights(ctx);
  const Tensor& x = ctx.input(kX);
  if (c.batch_first) swap_leading(x.data<float>(), x_buf.data<float>(), c.batch, c.seq, c.input);
  args[DNNL_ARG_SRC_LAYER] = bind(src_layer, c.batch_first ? x_buf : x);
  args[DNNL_ARG_SRC_ITER] = bind(state, load_state(ctx, kInitialH, c.has_h0, h0_buf));
  if (c.cell == CellKind::Lstm) args[DNNL_ARG_SRC_ITER_C] = bind(state, load_state(ctx, kInitialC, c.has_c0, c0_buf));
  args[DNNL_ARG_WEIGHTS_LAYER] = w_layer_reorder(bind(w_layer, w_layer_t), w_layer_packed);
  args[DNNL_ARG_WEIGHTS_ITER] = w_iter_reorder(bind(w_iter, w_iter_t), w_iter_packed);
  args[DNNL_ARG_BIAS] = bind(bias, bias_t);
  if (c.has_peephole) args[DNNL_ARG_WEIGHTS_PEEPHOLE] = bind(peephole, peephole_t);
  if (workspace) args[DNNL_ARG_WORKSPACE] = workspace;
}

class DnnlRnnKernel final : public Kernel {
 public:
  explicit DnnlRnnKernel(const RnnConfig& c) : s_(c, dnnl::prop_kind::forward_inference) {
    const int64_t D = c.dirs, N = c.batch, S = c.seq, H = c.hidden;
    std::visit([&](const auto& pd) { primitive_ = dnnl::primitive(pd); }, s_.fwd_pd);
    // Staging where ONNX's layout is not oneDNN's, or where oneDNN wants memory for an
    // output the node does not declare.
    if (c.batch_first || D == 2 || !c.want_y) y_buf_ = Tensor(DType::Float, {S, N, D * H});
    if (c.batch_first || !c.want_yh) yh_buf_ = Tensor(DType::Float, {D, N, H});
    if (c.cell == CellKind::Lstm && (c.batch_first || !c.want_yc)) yc_buf_ = Tensor(DType::Float, {D, N, H});
  }

  void run(KernelContext& ctx) override {
    const RnnConfig& c = s_.c;
    const int64_t D = c.dirs, N = c.batch, S = c.seq, H = c.hidden;
    if (c.has_lens) {
      const std::vector<int64_t> lens = sequence_lengths(c, ctx);
      if (std::any_of(lens.begin(), lens.end(), [&](int64_t len) { return len != S; })) {
        run_reference<float>(c, ctx);  // oneDNN has no per-entry sequence lengths
        return;
      }
    }
    std::unordered_map<int, dnnl::memory> args;
    s_.bind_forward_inputs(ctx, args);
    Tensor* y = c.want_y ? &ctx.output(kY, DType::Float, c.y_shape()) : nullptr;
    args[DNNL_ARG_DST_LAYER] = bind(s_.dst_layer, y_buf_.defined() ? y_buf_ : *y);
    Tensor* yh = c.want_yh ? &ctx.output(kYh, DType::Float, c.state_shape()) : nullptr;
    args[DNNL_ARG_DST_ITER] = bind(s_.state, yh_buf_.defined() ? yh_buf_ : *yh);
    Tensor* yc = c.want_yc ? &ctx.output(kYc, DType::Float, c.state_shape()) : nullptr;
    if (c.cell == CellKind::Lstm) args[DNNL_ARG_DST_ITER_C] = bind(s_.state, yc_buf_.defined() ? yc_buf_ : *yc);
    execute(primitive_, args);

    if (y && y_buf_.defined()) {
      const float* src = y_buf_.data<float>();
      float* dst = y->data<float>();
      if (c.batch_first) {
        swap_leading(src, dst, S, N, D * H);  // [T, N, D*H] -> [N, T, D, H]
      } else {
        for (int64_t t = 0; t < S; ++t) swap_leading(src + t * N * D * H, dst + t * D * N * H, N, D, H);
      }
    }
    if (yh && yh_buf_.defined()) swap_leading(yh_buf_.data<float>(), yh->data<float>(), D, N, H);
    if (yc && yc_buf_.defined()) swap_leading(yc_buf_.data<float>(), yc->data<float>(), D, N, H);
  }

 private:
  DnnlRnnSetup s_;
  dnnl::primitive primitive_;
  Tensor y_buf_, yh_buf_, yc_buf_;
};

bool dnnl_supports(const RnnConfig& c) {
  if (c.dtype != DType::Float || c.clip > 0.f || c.input_forget) return false;
  if (c.seq == 0 || c.batch == 0 || c.input == 0) return false;
  auto is = [&](size_t i, ActKind k) { return c.acts[i].kind == k; };
  for (int64_t d = 0; d < c.dirs; ++d) {
    const size_t base = static_cast<size_t>(d * c.acts_per_dir);
    switch (c.cell) {
      case CellKind::Rnn: {
        const Activation& a = c.acts[base];
        if (a.kind != ActKind::Tanh && a.kind != ActKind::Sigmoid && a.kind != ActKind::Relu && a.kind != ActKind::LeakyRelu)
          return false;
        if (a.kind != c.acts[0].kind || a.alpha != c.acts[0].alpha) return false;  // one activation for both directions
        break;
      }
      case CellKind::Gru:
        if (!is(base, ActKind::Sigmoid) || !is(base + 1, ActKind::Tanh)) return false;
        break;
      case CellKind::Lstm:
        if (!is(base, ActKind::Sigmoid) || !is(base + 1, ActKind::Tanh) || !is(base + 2, ActKind::Tanh)) return false;
        break;
    }
  }
  return true;
}

KernelFactory rnn_factory(CellKind cell) {
  return [cell](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    RnnConfig c = parse_config(cell, node, in);
    if (dnnl_supports(c)) {
      try {
        return std::make_unique<DnnlRnnKernel>(c);
      } catch (const dnnl::error&) {
        // oneDNN has no implementation for this shape on this machine: use the loops.
      }
    }
    return make_reference_kernel(c);
  };
}

// Every gradient of the node comes from one ai.onnxtrain <Op>Grad node (attributes as the
// forward node's, normalised to the newest opset's meaning); output gradients that do not
// flow are left out (zeros).
GradientRule rnn_gradient(CellKind cell, const char* grad_op) {
  return [cell, grad_op](GradientBuilder& b) {
    const Node& node = b.node();
    const int nf = forward_input_count(cell);
    const int no = cell == CellKind::Lstm ? 3 : 2;
    std::vector<Value*> inputs;
    for (int i = 0; i < nf; ++i) inputs.push_back(i < static_cast<int>(node.inputs.size()) ? node.inputs[i] : nullptr);
    for (int k = 0; k < no; ++k) inputs.push_back(b.has_GO(k) ? b.GO(k) : nullptr);
    while (!inputs.empty() && !inputs.back()) inputs.pop_back();
    Attributes attrs = node.attributes;
    if (node.opset < 14) attrs.erase("layout");
    if (cell == CellKind::Gru && node.opset < 3) attrs.erase("linear_before_reset");
    attrs.erase("output_sequence");  // opset 1; the forward ignores it too
    const std::vector<Value*> grads = b.op_n(grad_op, inputs, grad_output_count(cell), attrs, graph::kTrainingDomain);
    // forward input -> Grad output
    const std::pair<int, int> map[] = {{kX, kGradX}, {kW, kGradW}, {kR, kGradR}, {kB, kGradB},
                                       {kInitialH, kGradH0}, {kInitialC, kGradC0}, {kPeephole, kGradP}};
    for (const auto& [in, out] : map)
      if (out < grad_output_count(cell) && b.needs_grad(in)) b.GI(in, grads[out]);
  };
}

}  // namespace rnn_impl

void register_rnn_ops(Registry& r) {
  using namespace rnn_impl;
  r.add({"", "RNN", 1, INT_MAX, rnn_factory(CellKind::Rnn), "oneDNN vanilla_rnn", rnn_gradient(CellKind::Rnn, "RNNGrad"),
         {kSeqLens}});
  r.add({"", "GRU", 1, INT_MAX, rnn_factory(CellKind::Gru), "oneDNN gru / lbr_gru", rnn_gradient(CellKind::Gru, "GRUGrad"),
         {kSeqLens}});
  r.add({"", "LSTM", 1, INT_MAX, rnn_factory(CellKind::Lstm), "oneDNN lstm", rnn_gradient(CellKind::Lstm, "LSTMGrad"),
         {kSeqLens}});
}

}  // namespace onnxtrain::ops
