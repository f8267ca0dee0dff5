#pragma once
// What the recurrent-layer files share: rnn.cpp (configuration, forward kernels, the
// oneDNN setup, gradient rule) and rnn_grad.cpp (backward kernels). Each registers its own
// ops; neither calls into the other's registration. The
// ONNX vs oneDNN mapping is described at the top of rnn.cpp.
#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <variant>
#include <vector>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"

namespace onnxtrain::ops::rnn_impl {

enum class CellKind { Rnn, Gru, Lstm };

// Input and output positions shared by the three ops (initial_c and P are LSTM only).
enum { kX, kW, kR, kB, kSeqLens, kInitialH, kInitialC, kPeephole };
enum { kY, kYh, kYc };

enum class ActKind { Relu, Tanh, Sigmoid, Affine, LeakyRelu, ThresholdedRelu, ScaledTanh, HardSigmoid, Elu, Softsign, Softplus };

struct Activation {
  ActKind kind;
  float alpha = 0.f;
  float beta = 0.f;
};

// Everything the kernels need, validated once at plan time.
struct RnnConfig {
  CellKind cell = CellKind::Rnn;
  DType dtype = DType::Float;
  int64_t gates = 1;  // ONNX gates per direction: 1, 3 or 4
  int64_t dirs = 1;
  bool reverse = false;  // the single direction runs right to left
  int64_t seq = 0, batch = 0, input = 0, hidden = 0;
  bool batch_first = false;  // layout = 1
  bool linear_before_reset = false;
  bool input_forget = false;
  float clip = 0.f;  // 0: no clipping
  int64_t acts_per_dir = 1;
  std::vector<Activation> acts;  // acts_per_dir entries per direction
  bool has_bias = false, has_lens = false, has_h0 = false, has_c0 = false, has_peephole = false;
  bool want_y = false, want_yh = false, want_yc = false;

  Shape y_shape() const { return batch_first ? Shape{batch, seq, dirs, hidden} : Shape{seq, dirs, batch, hidden}; }
  Shape state_shape() const { return batch_first ? Shape{batch, dirs, hidden} : Shape{dirs, batch, hidden}; }
};

// `grad`: the node is an ai.onnxtrain *Grad node, whose attributes the gradient rule has already
// normalised to the newest opset's meaning (layout, linear_before_reset) and whose `in` are
// the forward inputs only.
RnnConfig parse_config(CellKind cell, const Node& node, const std::vector<InputInfo>& in, bool grad = false);

// Per-batch sequence lengths; the spec leaves lengths of 0 open: such an entry keeps its
// initial state and produces an all-zero Y.
std::vector<int64_t> sequence_lengths(const RnnConfig& c, const KernelContext& ctx);

// ---------------------------------------------------------------------------------------
// Reference implementation.

template <typename T>
void activate(const Activation& a, T clip, T* x, int64_t n) {
  if (clip > 0)
    for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(x[i], -clip), clip);
  const T alpha = a.alpha, beta = a.beta;
  switch (a.kind) {
    case ActKind::Relu: for (int64_t i = 0; i < n; ++i) x[i] = std::max(x[i], T(0)); break;
    case ActKind::Tanh: for (int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i]); break;
    case ActKind::Sigmoid: for (int64_t i = 0; i < n; ++i) x[i] = T(1) / (T(1) + std::exp(-x[i])); break;
    case ActKind::Affine: for (int64_t i = 0; i < n; ++i) x[i] = alpha * x[i] + beta; break;
    case ActKind::LeakyRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0 ? x[i] : alpha * x[i]; break;
    case ActKind::ThresholdedRelu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= alpha ? x[i] : T(0); break;
    case ActKind::ScaledTanh: for (int64_t i = 0; i < n; ++i) x[i] = alpha * std::tanh(beta * x[i]); break;
    case ActKind::HardSigmoid:
      for (int64_t i = 0; i < n; ++i) x[i] = std::min(std::max(alpha * x[i] + beta, T(0)), T(1));
      break;
    case ActKind::Elu: for (int64_t i = 0; i < n; ++i) x[i] = x[i] >= 0 ? x[i] : alpha * (std::exp(x[i]) - T(1)); break;
    case ActKind::Softsign: for (int64_t i = 0; i < n; ++i) x[i] = x[i] / (T(1) + std::abs(x[i])); break;
    case ActKind::Softplus:
      for (int64_t i = 0; i < n; ++i)
        x[i] = x[i] > 0 ? x[i] + std::log1p(std::exp(-x[i])) : std::log1p(std::exp(x[i]));
      break;
  }
}

// out[r] += sum_k v[k] * m[r][k] for rows [0, rows) of the row-major matrix m [rows, k].
template <typename T>
void add_matvec(const T* m, const T* v, int64_t rows, int64_t k, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = m + r * k;
    T acc = 0;
    for (int64_t i = 0; i < k; ++i) acc += row[i] * v[i];
    out[r] += acc;
  }
}

// One direction's parameters in ONNX layout.
template <typename T>
struct DirectionParams {
  const T* w;   // [G*H, I]
  const T* r;   // [G*H, H]
  const T* wb;  // [G*H] or null
  const T* rb;  // [G*H] or null
  const T* p;   // peepholes [3*H] (i, o, f) or null
  const Activation* act;
};

template <typename T>
DirectionParams<T> direction_params(const RnnConfig& c, int64_t d, const T* w, const T* r, const T* bias, const T* peep) {
  const int64_t GH = c.gates * c.hidden;
  DirectionParams<T> p;
  p.w = w + d * GH * c.input;
  p.r = r + d * GH * c.hidden;
  p.wb = bias ? bias + d * 2 * GH : nullptr;
  p.rb = bias ? p.wb + GH : nullptr;
  p.p = peep ? peep + d * 3 * c.hidden : nullptr;
  p.act = c.acts.data() + d * c.acts_per_dir;
  return p;
}

// What one time step of one recurrence saves for the backward pass (offsets into its record):
// the previous state, the gates before and after their activations, and per cell: LSTM the
// previous and new cell state and act[2](new cell), linear-before-reset GRU Rh*h + Rbh.
struct StepRecord {
  int64_t hprev = 0, pre = 0, post = 0, cprev = 0, cnew = 0, hc = 0, q = 0, size = 0;
  explicit StepRecord(const RnnConfig& c) {
    const int64_t H = c.hidden, GH = c.gates * H;
    pre = H;
    post = pre + GH;
    size = post + GH;
    if (c.cell == CellKind::Lstm) {
      cprev = size;
      cnew = cprev + H;
      hc = cnew + H;
      size = hc + H;
    } else if (c.cell == CellKind::Gru && c.linear_before_reset) {
      q = size;
      size = q + H;
    }
  }
};

// Advances one (direction, batch entry) recurrence by one step: h (and cell) in place.
// scratch holds G*H + 2*H values. With `record`, saves what the backward pass needs.
template <typename T>
void cell_step(const RnnConfig& c, const DirectionParams<T>& p, const T* xt, T* h, T* cell, T* scratch, T* record,
               const StepRecord& L) {
  const int64_t I = c.input, H = c.hidden, GH = c.gates * H;
  const T clip = static_cast<T>(c.clip);
  const Activation* act = p.act;
  T* gates = scratch;
  T* tmp = scratch + GH;
  T* tmp2 = tmp + H;
  auto save = [&](int64_t off, const T* src, int64_t n) {
    if (record) std::copy_n(src, n, record + off);
  };
  save(L.hprev, h, H);
  for (int64_t j = 0; j < GH; ++j) gates[j] = p.wb ? p.wb[j] : T(0);
  add_matvec(p.w, xt, GH, I, gates);
  if (c.cell == CellKind::Rnn) {
    add_matvec(p.r, h, H, H, gates);
    if (p.rb) for (int64_t j = 0; j < H; ++j) gates[j] += p.rb[j];
    save(L.pre, gates, H);
    activate(act[0], clip, gates, H);
    save(L.post, gates, H);
    std::copy_n(gates, H, h);
  } else if (c.cell == CellKind::Gru) {
    T* z = gates;
    T* rg = z + H;
    T* hg = rg + H;
    add_matvec(p.r, h, 2 * H, H, z);  // update and reset gates
    if (p.rb) for (int64_t j = 0; j < 2 * H; ++j) z[j] += p.rb[j];
    save(L.pre, z, 2 * H);
    activate(act[0], clip, z, 2 * H);
    for (int64_t j = 0; j < H; ++j) tmp[j] = p.rb ? p.rb[2 * H + j] : T(0);
    if (c.linear_before_reset) {
      add_matvec(p.r + 2 * H * H, h, H, H, tmp);
      save(L.q, tmp, H);
      for (int64_t j = 0; j < H; ++j) hg[j] += rg[j] * tmp[j];
    } else {
      for (int64_t j = 0; j < H; ++j) tmp2[j] = rg[j] * h[j];
      add_matvec(p.r + 2 * H * H, tmp2, H, H, tmp);
      for (int64_t j = 0; j < H; ++j) hg[j] += tmp[j];
    }
    save(L.pre + 2 * H, hg, H);
    activate(act[1], clip, hg, H);
    save(L.post, gates, GH);
    for (int64_t j = 0; j < H; ++j) h[j] = (T(1) - z[j]) * hg[j] + z[j] * h[j];
  } else {
    T* ig = gates;
    T* og = ig + H;
    T* fg = og + H;
    T* cg = fg + H;
    save(L.cprev, cell, H);
    add_matvec(p.r, h, GH, H, gates);
    if (p.rb) for (int64_t j = 0; j < GH; ++j) gates[j] += p.rb[j];
    if (p.p)
      for (int64_t j = 0; j < H; ++j) {
        ig[j] += p.p[j] * cell[j];
        fg[j] += p.p[2 * H + j] * cell[j];
      }
    save(L.pre, gates, GH);  // o's pre-activation is completed below
    activate(act[0], clip, ig, H);
    if (c.input_forget) {
      for (int64_t j = 0; j < H; ++j) fg[j] = T(1) - ig[j];
    } else {
      activate(act[0], clip, fg, H);
    }
    activate(act[1], clip, cg, H);
    for (int64_t j = 0; j < H; ++j) cell[j] = fg[j] * cell[j] + ig[j] * cg[j];
    if (p.p) for (int64_t j = 0; j < H; ++j) og[j] += p.p[H + j] * cell[j];
    save(L.pre + H, og, H);
    activate(act[0], clip, og, H);
    std::copy_n(cell, H, tmp);
    activate(act[2], T(0), tmp, H);  // clip bounds gate inputs, not the cell state
    for (int64_t j = 0; j < H; ++j) h[j] = og[j] * tmp[j];
    save(L.post, gates, GH);
    save(L.cnew, cell, H);
    save(L.hc, tmp, H);
  }
}

// ---------------------------------------------------------------------------------------
// oneDNN implementation.

// dst[b][a][:] = src[a][b][:] for src [A, B, C] (batch-first <-> time-first, and the
// direction/batch swap between oneDNN's and ONNX's sequence outputs).
void swap_leading(const float* src, float* dst, int64_t A, int64_t B, int64_t C);

// ONNX rows [dirs][G*H][K] (gates in ONNX order) -> oneDNN ldigo [dirs][K][G][H] with the
// gates in oneDNN order: gate g of oneDNN is gate perm[g] of ONNX.
void weights_to_ldigo(const float* src, float* dst, int64_t D, int64_t G, int64_t H, int64_t K, const std::vector<int>& perm);

// The inverse of weights_to_ldigo (for weight gradients).
void ldigo_to_weights(const float* src, float* dst, int64_t D, int64_t G, int64_t H, int64_t K, const std::vector<int>& perm);

inline constexpr int kPeepholeFromOnnx[3] = {0, 2, 1};  // oneDNN i,f,o from ONNX i,o,f

using ForwardPd = std::variant<dnnl::vanilla_rnn_forward::primitive_desc, dnnl::gru_forward::primitive_desc,
                               dnnl::lbr_gru_forward::primitive_desc, dnnl::lstm_forward::primitive_desc>;

// What the forward and the gradient kernel share: the memory descriptors, the forward
// primitive descriptor and the ONNX -> oneDNN re-layout of the parameters.
struct DnnlRnnSetup {
  RnnConfig c;
  bool lbr = false;
  int64_t bias_gates = 0;
  std::vector<int> perm;
  dnnl::rnn_direction dir = dnnl::rnn_direction::unidirectional_left2right;
  dnnl::algorithm activation = dnnl::algorithm::undef;  // vanilla RNN
  float alpha = 0.f;
  dnnl::memory::desc src_layer, state, dst_layer, w_layer_any, w_iter_any, w_layer, w_iter, bias, peephole;
  ForwardPd fwd_pd;
  Tensor w_layer_t, w_iter_t, bias_t, peephole_t;  // parameters in oneDNN's plain layouts
  // The forward primitive's inputs: weights re-laid out to its preferred layouts, its
  // workspace, and staging where ONNX's layout is not oneDNN's (a missing initial state
  // stays all zeros).
  Reorderer w_layer_reorder, w_iter_reorder;
  dnnl::memory w_layer_packed, w_iter_packed, workspace;
  Tensor x_buf, h0_buf, c0_buf;

  DnnlRnnSetup(const RnnConfig& cfg, dnnl::prop_kind prop);

  dnnl::memory::desc fwd_arg(int arg) const {
    return std::visit([&](const auto& pd) { return pd.query_md(dnnl::query::exec_arg_md, arg); }, fwd_pd);
  }

  // Weights may change between runs (training), so they are re-laid out every time.
  void load_weights(const KernelContext& ctx);

  // The tensor holding initial state `index` in oneDNN's [dirs, N, H] order (`buf` when the
  // input is absent: it stays zero).
  const Tensor& load_state(const KernelContext& ctx, int index, bool present, Tensor& buf) const;

  // Loads the weights and binds the forward primitive's sources, parameters and workspace:
  // the same for the forward kernel and for the gradient kernel's recomputed forward.
  void bind_forward_inputs(const KernelContext& ctx, std::unordered_map<int, dnnl::memory>& args);
};

// Whether oneDNN's cells compute exactly this node.
bool dnnl_supports(const RnnConfig& c);

// The ai.onnxtrain <Op>Grad interface, emitted by the gradient rule (rnn.cpp) and run by
// the backward kernels (rnn_grad.cpp): the forward node's inputs, then the gradients of
// its outputs; outputs are the input gradients in this order.
enum { kGradX, kGradW, kGradR, kGradB, kGradH0, kGradC0, kGradP };

inline int forward_input_count(CellKind cell) { return cell == CellKind::Lstm ? 8 : 6; }
inline int grad_output_count(CellKind cell) { return cell == CellKind::Lstm ? 7 : 5; }

}  // namespace onnxtrain::ops::rnn_impl
