// Recurrent layers: RNN, GRU and LSTM (opsets 1, 3, 7 and 14). float32 runs on oneDNN's RNN
// primitives when the node is a configuration oneDNN has (its fixed activations, no clip, no
// coupled input/forget gate, every sequence at full length); everything else, and double,
// runs on the reference loops below, which follow the whole ONNX spec.
//
// Gradients: one ai.onnxtrain RNNGrad / GRUGrad / LSTMGrad node per forward node. On the same
// oneDNN configurations it reruns the forward in forward_training mode (for the workspace)
// and then the backward primitive; otherwise, and for double, backpropagation through time
// over the ONNX formulas (reference loops, per-step records of the recomputed forward).
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
#include <cstring>
#include <variant>

#include <spdlog/spdlog.h>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

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

// `grad`: the node is an ai.onnxtrain *Grad node, whose attributes the gradient rule has already
// normalised to the newest opset's meaning (layout, linear_before_reset) and whose `in` are
// the forward inputs only.
RnnConfig parse_config(CellKind cell, const Node& node, const std::vector<InputInfo>& in, bool grad = false) {
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

// Per-batch sequence lengths; the spec leaves lengths of 0 open: such an entry keeps its
// initial state and produces an all-zero Y.
std::vector<int64_t> sequence_lengths(const RnnConfig& c, const KernelContext& ctx) {
  if (!c.has_lens) return std::vector<int64_t>(c.batch, c.seq);
  std::vector<int64_t> lens = ctx.input(kSeqLens).as_int64();
  for (int64_t len : lens)
    if (len < 0 || len > c.seq)
      fail(ctx.node(), "sequence_lens value " + std::to_string(len) + " is outside [0, " + std::to_string(c.seq) + "]");
  return lens;
}

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

// out[k] += sum_r v[r] * m[r][k]: the transposed product, for gradients.
template <typename T>
void add_matvec_t(const T* m, const T* v, int64_t rows, int64_t k, T* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = m + r * k;
    const T a = v[r];
    if (a == T(0)) continue;
    for (int64_t i = 0; i < k; ++i) out[i] += a * row[i];
  }
}

// g[i] *= d act(clip(x))/dx at the raw pre-activation x[i], whose activation is y[i]; no
// gradient where clipping cut x.
template <typename T>
void activation_backward(const Activation& a, T clip, const T* x, const T* y, T* g, int64_t n) {
  const T alpha = a.alpha, beta = a.beta;
  auto v = [&](int64_t i) { return clip > 0 ? std::min(std::max(x[i], -clip), clip) : x[i]; };
  switch (a.kind) {
    case ActKind::Relu: for (int64_t i = 0; i < n; ++i) g[i] *= v(i) > 0 ? T(1) : T(0); break;
    case ActKind::Tanh: for (int64_t i = 0; i < n; ++i) g[i] *= T(1) - y[i] * y[i]; break;
    case ActKind::Sigmoid: for (int64_t i = 0; i < n; ++i) g[i] *= y[i] * (T(1) - y[i]); break;
    case ActKind::Affine: for (int64_t i = 0; i < n; ++i) g[i] *= alpha; break;
    case ActKind::LeakyRelu: for (int64_t i = 0; i < n; ++i) g[i] *= v(i) >= 0 ? T(1) : alpha; break;
    case ActKind::ThresholdedRelu: for (int64_t i = 0; i < n; ++i) g[i] *= v(i) >= alpha ? T(1) : T(0); break;
    case ActKind::ScaledTanh:
      for (int64_t i = 0; i < n; ++i) {
        const T t = std::tanh(beta * v(i));
        g[i] *= alpha * beta * (T(1) - t * t);
      }
      break;
    case ActKind::HardSigmoid:
      for (int64_t i = 0; i < n; ++i) {
        const T u = alpha * v(i) + beta;
        g[i] *= u > 0 && u < 1 ? alpha : T(0);
      }
      break;
    case ActKind::Elu: for (int64_t i = 0; i < n; ++i) g[i] *= v(i) >= 0 ? T(1) : alpha * std::exp(v(i)); break;
    case ActKind::Softsign:
      for (int64_t i = 0; i < n; ++i) {
        const T s = T(1) + std::abs(v(i));
        g[i] /= s * s;
      }
      break;
    case ActKind::Softplus: for (int64_t i = 0; i < n; ++i) g[i] *= T(1) / (T(1) + std::exp(-v(i))); break;
  }
  if (clip > 0)
    for (int64_t i = 0; i < n; ++i)
      if (x[i] < -clip || x[i] > clip) g[i] = 0;
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
// Gradients: ai.onnxtrain RNNGrad / GRUGrad / LSTMGrad.
//   inputs:  the forward node's inputs (X, W, R, B, sequence_lens, initial_h[, initial_c, P]),
//            then the gradients of its outputs (dY, dY_h[, dY_c]); omitted ones are zero.
//   outputs: dX, dW, dR, dB, dinitial_h[, dinitial_c, dP], shaped like the forward inputs.
// Both kernels recompute the forward pass (the ONNX node has no output to keep oneDNN's
// workspace or our per-step records in).

enum { kGradX, kGradW, kGradR, kGradB, kGradH0, kGradC0, kGradP };

int forward_input_count(CellKind cell) { return cell == CellKind::Lstm ? 8 : 6; }
int grad_output_count(CellKind cell) { return cell == CellKind::Lstm ? 7 : 5; }

// Backpropagates one step of one recurrence. dh/dc: gradients of the step's new state in, of
// its previous state out. da_in: gradients of the gates' W x + Wb parts, da_rec of their
// R h + Rb parts (they differ only for GRU's candidate gate); rin receives r (.) h_prev, the
// recurrence input of a (not linear-before-reset) GRU's candidate gate; dp the step's
// peephole gradients (i, o, f). scratch holds 2*H values.
template <typename T>
void cell_step_backward(const RnnConfig& c, const DirectionParams<T>& p, const T* rec, const StepRecord& L, T* dh,
                        T* dc, T* da_in, T* da_rec, T* rin, T* dp, T* scratch) {
  const int64_t H = c.hidden, GH = c.gates * H;
  const T clip = static_cast<T>(c.clip);
  const Activation* act = p.act;
  const T* hprev = rec + L.hprev;
  const T* pre = rec + L.pre;
  const T* post = rec + L.post;
  T* dnew = scratch;  // gradient of the previous state being accumulated
  std::fill_n(dnew, H, T(0));
  if (c.cell == CellKind::Rnn) {
    std::copy_n(dh, H, da_in);
    activation_backward(act[0], clip, pre, post, da_in, H);
    std::copy_n(da_in, H, da_rec);
    add_matvec_t(p.r, da_in, H, H, dnew);
  } else if (c.cell == CellKind::Gru) {
    const T* z = post;
    const T* rg = post + H;
    const T* hg = post + 2 * H;
    T* daz = da_in;
    T* dar = da_in + H;
    T* dah = da_in + 2 * H;
    for (int64_t j = 0; j < H; ++j) {
      dah[j] = dh[j] * (T(1) - z[j]);
      daz[j] = dh[j] * (hprev[j] - hg[j]);
      dnew[j] = dh[j] * z[j];
    }
    activation_backward(act[1], clip, pre + 2 * H, hg, dah, H);
    const T* rh_w = p.r + 2 * H * H;
    if (c.linear_before_reset) {
      const T* q = rec + L.q;
      T* dq = da_rec + 2 * H;
      for (int64_t j = 0; j < H; ++j) {
        dar[j] = dah[j] * q[j];
        dq[j] = dah[j] * rg[j];
      }
      add_matvec_t(rh_w, dq, H, H, dnew);
    } else {
      T* drh = scratch + H;
      std::fill_n(drh, H, T(0));
      add_matvec_t(rh_w, dah, H, H, drh);
      for (int64_t j = 0; j < H; ++j) {
        dar[j] = drh[j] * hprev[j];
        dnew[j] += drh[j] * rg[j];
        rin[j] = rg[j] * hprev[j];
      }
      std::copy_n(dah, H, da_rec + 2 * H);
    }
    activation_backward(act[0], clip, pre, post, da_in, 2 * H);
    std::copy_n(da_in, 2 * H, da_rec);
    add_matvec_t(p.r, da_in, 2 * H, H, dnew);
  } else {
    const T* ig = post;
    const T* og = post + H;
    const T* fg = post + 2 * H;
    const T* cg = post + 3 * H;
    const T* cprev = rec + L.cprev;
    const T* cnew = rec + L.cnew;
    const T* hc = rec + L.hc;
    T* dai = da_in;
    T* dao = da_in + H;
    T* daf = da_in + 2 * H;
    T* dac = da_in + 3 * H;
    T* dcell = scratch + H;  // gradient of the new cell state
    for (int64_t j = 0; j < H; ++j) {
      dao[j] = dh[j] * hc[j];
      dcell[j] = dh[j] * og[j];
    }
    activation_backward(act[0], clip, pre + H, og, dao, H);
    activation_backward(act[2], T(0), cnew, hc, dcell, H);
    for (int64_t j = 0; j < H; ++j) {
      dcell[j] += dc[j] + (p.p ? dao[j] * p.p[H + j] : T(0));
      dai[j] = dcell[j] * cg[j];
      dac[j] = dcell[j] * ig[j];
      daf[j] = dcell[j] * cprev[j];
      dc[j] = dcell[j] * fg[j];
    }
    if (c.input_forget) {
      for (int64_t j = 0; j < H; ++j) {
        dai[j] -= daf[j];  // f = 1 - i
        daf[j] = 0;
      }
    } else {
      activation_backward(act[0], clip, pre + 2 * H, fg, daf, H);
    }
    activation_backward(act[0], clip, pre, ig, dai, H);
    activation_backward(act[1], clip, pre + 3 * H, cg, dac, H);
    if (p.p)
      for (int64_t j = 0; j < H; ++j) {
        dc[j] += dai[j] * p.p[j] + daf[j] * p.p[2 * H + j];
        dp[j] = dai[j] * cprev[j];
        dp[H + j] = dao[j] * cnew[j];
        dp[2 * H + j] = daf[j] * cprev[j];
      }
    std::copy_n(da_in, GH, da_rec);
    add_matvec_t(p.r, da_in, GH, H, dnew);
  }
  std::copy_n(dnew, H, dh);
}

// Backpropagation through time over the ONNX formulas: the forward pass is recomputed with
// per-step records, then each direction runs its steps backwards for all batch entries at
// once (entries past their sequence length idle), accumulating dW/dR/dB row by row.
template <typename T>
void run_reference_grad(const RnnConfig& c, KernelContext& ctx) {
  const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden, G = c.gates, GH = G * H;
  const bool lstm = c.cell == CellKind::Lstm;
  const std::vector<int64_t> lens = sequence_lengths(c, ctx);
  const T* x = ctx.input(kX).data<T>();
  const T* w = ctx.input(kW).data<T>();
  const T* r = ctx.input(kR).data<T>();
  const T* bias = c.has_bias ? ctx.input(kB).data<T>() : nullptr;
  const T* h0 = c.has_h0 ? ctx.input(kInitialH).data<T>() : nullptr;
  const T* c0 = c.has_c0 ? ctx.input(kInitialC).data<T>() : nullptr;
  const T* peep = c.has_peephole ? ctx.input(kPeephole).data<T>() : nullptr;
  const int nf = forward_input_count(c.cell);
  const T* dy = ctx.has_input(nf) ? ctx.input(nf).data<T>() : nullptr;
  const T* dyh = ctx.has_input(nf + 1) ? ctx.input(nf + 1).data<T>() : nullptr;
  const T* dyc = lstm && ctx.has_input(nf + 2) ? ctx.input(nf + 2).data<T>() : nullptr;

  auto zeroed = [&](int index, const Shape& shape) {
    T* p = ctx.output(index, c.dtype, shape).template data<T>();
    std::fill_n(p, shape_numel(shape), T(0));
    return p;
  };
  T* dx = zeroed(kGradX, c.batch_first ? Shape{N, S, I} : Shape{S, N, I});
  T* dw = zeroed(kGradW, {D, GH, I});
  T* dr = zeroed(kGradR, {D, GH, H});
  T* db = zeroed(kGradB, {D, 2 * GH});
  T* dh0 = ctx.output(kGradH0, c.dtype, c.state_shape()).template data<T>();
  T* dc0 = lstm ? ctx.output(kGradC0, c.dtype, c.state_shape()).template data<T>() : nullptr;
  T* dpeep = lstm ? zeroed(kGradP, {D, 3 * H}) : nullptr;

  auto x_off = [&](int64_t t, int64_t b) { return (c.batch_first ? b * S + t : t * N + b) * I; };
  auto y_off = [&](int64_t t, int64_t d, int64_t b) { return (c.batch_first ? (b * S + t) * D + d : (t * D + d) * N + b) * H; };
  auto state_off = [&](int64_t d, int64_t b) { return (c.batch_first ? b * D + d : d * N + b) * H; };

  // Forward with records: records[((d * S + step) * N + b) * L.size].
  const StepRecord L(c);
  std::vector<T> records(static_cast<size_t>(D * S * N * L.size));
  auto record_at = [&](int64_t d, int64_t step, int64_t b) { return records.data() + ((d * S + step) * N + b) * L.size; };
  const int64_t step_work = GH * (I + H);
  parallel_for(
      D * N,
      [&](int64_t item) {
        const int64_t d = item / N, b = item % N;
        const bool backwards = c.reverse || d == 1;
        const DirectionParams<T> p = direction_params(c, d, w, r, bias, peep);
        std::vector<T> h(H, T(0)), cell(H, T(0)), scratch(GH + 2 * H);
        if (h0) std::copy_n(h0 + state_off(d, b), H, h.begin());
        if (c0) std::copy_n(c0 + state_off(d, b), H, cell.begin());
        for (int64_t step = 0; step < lens[b]; ++step) {
          const int64_t t = backwards ? lens[b] - 1 - step : step;
          cell_step<T>(c, p, x + x_off(t, b), h.data(), cell.data(), scratch.data(), record_at(d, step, b), L);
        }
      },
      S * step_work >= (1 << 16) ? 2 : INT64_MAX);

  std::vector<T> dh(N * H), dc(N * H), da_in(N * GH), da_rec(N * GH), rin(N * H), dp(N * 3 * H), scratch(N * 2 * H);
  std::vector<int64_t> time_of(N);
  for (int64_t d = 0; d < D; ++d) {
    const bool backwards = c.reverse || d == 1;
    const DirectionParams<T> p = direction_params(c, d, w, r, bias, peep);
    for (int64_t b = 0; b < N; ++b) {
      for (int64_t j = 0; j < H; ++j) {
        dh[b * H + j] = dyh ? dyh[state_off(d, b) + j] : T(0);
        dc[b * H + j] = dyc ? dyc[state_off(d, b) + j] : T(0);
      }
    }
    const bool gru_split = c.cell == CellKind::Gru && !c.linear_before_reset;
    for (int64_t step = S - 1; step >= 0; --step) {
      parallel_for(
          N,
          [&](int64_t b) {
            if (step >= lens[b]) {
              time_of[b] = -1;
              return;
            }
            const int64_t t = backwards ? lens[b] - 1 - step : step;
            time_of[b] = t;
            T* dhb = dh.data() + b * H;
            if (dy)
              for (int64_t j = 0; j < H; ++j) dhb[j] += dy[y_off(t, d, b) + j];
            T* da = da_in.data() + b * GH;
            cell_step_backward<T>(c, p, record_at(d, step, b), L, dhb, dc.data() + b * H, da, da_rec.data() + b * GH,
                                  rin.data() + b * H, dp.data() + b * 3 * H, scratch.data() + b * 2 * H);
            add_matvec_t(p.w, da, GH, I, dx + x_off(t, b));
          },
          step_work >= (1 << 14) ? 2 : INT64_MAX);
      // Weight gradients, one row per task (no two tasks write the same memory).
      T* dwd = dw + d * GH * I;
      T* drd = dr + d * GH * H;
      T* dwb = db + d * 2 * GH;
      T* drb = dwb + GH;
      parallel_for(
          GH,
          [&](int64_t j) {
            T* dwj = dwd + j * I;
            T* drj = drd + j * H;
            const bool from_rin = gru_split && j >= 2 * H;
            T sw = 0, sr = 0;
            for (int64_t b = 0; b < N; ++b) {
              if (time_of[b] < 0) continue;
              const T a = da_in[b * GH + j];
              const T ar = da_rec[b * GH + j];
              sw += a;
              sr += ar;
              const T* xb = x + x_off(time_of[b], b);
              for (int64_t k = 0; k < I; ++k) dwj[k] += a * xb[k];
              const T* hin = from_rin ? rin.data() + b * H : record_at(d, step, b) + L.hprev;
              for (int64_t k = 0; k < H; ++k) drj[k] += ar * hin[k];
            }
            dwb[j] += sw;
            drb[j] += sr;
          },
          N * GH * (I + H) >= (1 << 15) ? 2 : INT64_MAX);
      if (peep) {
        T* dpd = dpeep + d * 3 * H;
        for (int64_t b = 0; b < N; ++b)
          if (time_of[b] >= 0)
            for (int64_t j = 0; j < 3 * H; ++j) dpd[j] += dp[b * 3 * H + j];
      }
    }
    for (int64_t b = 0; b < N; ++b) {
      std::copy_n(dh.data() + b * H, H, dh0 + state_off(d, b));
      if (dc0) std::copy_n(dc.data() + b * H, H, dc0 + state_off(d, b));
    }
  }
}

std::unique_ptr<Kernel> make_reference_grad_kernel(const RnnConfig& c) {
  return make_function_kernel([c](KernelContext& ctx) {
    dispatch_float(c.dtype, ctx.node(), [&](auto tag) { run_reference_grad<decltype(tag)>(c, ctx); });
  });
}

// ---------------------------------------------------------------------------------------
// oneDNN implementation.

// dst[b][a][:] = src[a][b][:] for src [A, B, C] (batch-first <-> time-first, and the
// direction/batch swap between oneDNN's and ONNX's sequence outputs).
void swap_leading(const float* src, float* dst, int64_t A, int64_t B, int64_t C) {
  parallel_for(A * B, [&](int64_t ab) {
    const int64_t a = ab / B, b = ab % B;
    std::copy_n(src + ab * C, C, dst + (b * A + a) * C);
  }, std::max<int64_t>(1, 16384 / std::max<int64_t>(C, 1)));
}

// ONNX rows [dirs][G*H][K] (gates in ONNX order) -> oneDNN ldigo [dirs][K][G][H] with the
// gates in oneDNN order: gate g of oneDNN is gate perm[g] of ONNX.
void weights_to_ldigo(const float* src, float* dst, int64_t D, int64_t G, int64_t H, int64_t K, const std::vector<int>& perm) {
  parallel_for(D * G * H, [&](int64_t row) {
    const int64_t d = row / (G * H), g = row / H % G, j = row % H;
    const float* s = src + ((d * G + perm[g]) * H + j) * K;
    float* o = dst + d * K * G * H + g * H + j;
    for (int64_t k = 0; k < K; ++k) o[k * G * H] = s[k];
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)));
}

// The inverse of weights_to_ldigo (for weight gradients).
void ldigo_to_weights(const float* src, float* dst, int64_t D, int64_t G, int64_t H, int64_t K, const std::vector<int>& perm) {
  parallel_for(D * G * H, [&](int64_t row) {
    const int64_t d = row / (G * H), g = row / H % G, j = row % H;
    const float* s = src + d * K * G * H + g * H + j;
    float* o = dst + ((d * G + perm[g]) * H + j) * K;
    for (int64_t k = 0; k < K; ++k) o[k] = s[k * G * H];
  }, std::max<int64_t>(1, 65536 / std::max<int64_t>(K, 1)));
}

static constexpr int kPeepholeFromOnnx[3] = {0, 2, 1};  // oneDNN i,f,o from ONNX i,o,f

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

  DnnlRnnSetup(const RnnConfig& cfg, dnnl::prop_kind prop) : c(cfg) {
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
        fwd_pd = dnnl::vanilla_rnn_forward::primitive_desc(desc, eng);
        break;
      }
      case CellKind::Gru:
        if (lbr) {
          dnnl::lbr_gru_forward::desc desc(prop, dir, src_layer, state, w_layer_any, w_iter_any, bias, dst_layer, state);
          fwd_pd = dnnl::lbr_gru_forward::primitive_desc(desc, eng);
        } else {
          dnnl::gru_forward::desc desc(prop, dir, src_layer, state, w_layer_any, w_iter_any, bias, dst_layer, state);
          fwd_pd = dnnl::gru_forward::primitive_desc(desc, eng);
        }
        break;
      case CellKind::Lstm: {
        dnnl::lstm_forward::desc desc(prop, dir, src_layer, state, state, w_layer_any, w_iter_any, peephole, bias,
                                      dst_layer, state, state);
        fwd_pd = dnnl::lstm_forward::primitive_desc(desc, eng);
        break;
      }
    }
    w_layer_t = Tensor(DType::Float, {D, I, G, H});
    w_iter_t = Tensor(DType::Float, {D, H, G, H});
    bias_t = Tensor(DType::Float, {D, bias_gates, H});  // stays zero when B is absent
    if (c.has_peephole) peephole_t = Tensor(DType::Float, {D, 3, H});
  }

  dnnl::memory::desc fwd_arg(int arg) const {
    return std::visit([&](const auto& pd) { return pd.query_md(dnnl::query::exec_arg_md, arg); }, fwd_pd);
  }

  // Weights may change between runs (training), so they are re-laid out every time.
  void load_weights(const KernelContext& ctx) {
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

  // The tensor holding initial state `index` in oneDNN's [dirs, N, H] order (`buf` when the
  // input is absent: it stays zero).
  const Tensor& load_state(const KernelContext& ctx, int index, bool present, Tensor& buf) const {
    if (!present) return buf;
    const Tensor& s = ctx.input(index);
    if (!c.batch_first) return s;
    swap_leading(s.data<float>(), buf.data<float>(), c.batch, c.dirs, c.hidden);
    return buf;
  }
};

class DnnlRnnKernel final : public Kernel {
 public:
  explicit DnnlRnnKernel(const RnnConfig& c) : s_(c, dnnl::prop_kind::forward_inference) {
    const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden;
    std::visit([&](const auto& pd) { primitive_ = dnnl::primitive(pd); }, s_.fwd_pd);
    w_layer_reorder_ = Reorderer(s_.w_layer, s_.fwd_arg(DNNL_ARG_WEIGHTS_LAYER));
    w_iter_reorder_ = Reorderer(s_.w_iter, s_.fwd_arg(DNNL_ARG_WEIGHTS_ITER));
    const dnnl::memory::desc ws = s_.fwd_arg(DNNL_ARG_WORKSPACE);
    if (ws.get_size() > 0) workspace_ = dnnl::memory(ws, cpu_engine());

    // Staging where ONNX's layout is not oneDNN's, or where oneDNN wants memory for an
    // output the node does not declare. A missing initial state stays all zeros.
    if (c.batch_first) x_buf_ = Tensor(DType::Float, {S, N, I});
    if (c.batch_first || !c.has_h0) h0_buf_ = Tensor(DType::Float, {D, N, H});
    if (c.cell == CellKind::Lstm && (c.batch_first || !c.has_c0)) c0_buf_ = Tensor(DType::Float, {D, N, H});
    if (c.batch_first || D == 2 || !c.want_y) y_buf_ = Tensor(DType::Float, {S, N, D * H});
    if (c.batch_first || !c.want_yh) yh_buf_ = Tensor(DType::Float, {D, N, H});
    if (c.cell == CellKind::Lstm && (c.batch_first || !c.want_yc)) yc_buf_ = Tensor(DType::Float, {D, N, H});
  }

  void run(KernelContext& ctx) override {
    const RnnConfig& c = s_.c;
    const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden;
    if (c.has_lens) {
      const std::vector<int64_t> lens = sequence_lengths(c, ctx);
      if (std::any_of(lens.begin(), lens.end(), [&](int64_t len) { return len != S; })) {
        run_reference<float>(c, ctx);  // oneDNN has no per-entry sequence lengths
        return;
      }
    }
    s_.load_weights(ctx);

    std::unordered_map<int, dnnl::memory> args;
    const Tensor& x = ctx.input(kX);
    if (c.batch_first) swap_leading(x.data<float>(), x_buf_.data<float>(), N, S, I);
    args[DNNL_ARG_SRC_LAYER] = bind(s_.src_layer, c.batch_first ? x_buf_ : x);
    args[DNNL_ARG_SRC_ITER] = bind(s_.state, s_.load_state(ctx, kInitialH, c.has_h0, h0_buf_));
    if (c.cell == CellKind::Lstm) args[DNNL_ARG_SRC_ITER_C] = bind(s_.state, s_.load_state(ctx, kInitialC, c.has_c0, c0_buf_));
    args[DNNL_ARG_WEIGHTS_LAYER] = w_layer_reorder_(bind(s_.w_layer, s_.w_layer_t), w_layer_packed_);
    args[DNNL_ARG_WEIGHTS_ITER] = w_iter_reorder_(bind(s_.w_iter, s_.w_iter_t), w_iter_packed_);
    args[DNNL_ARG_BIAS] = bind(s_.bias, s_.bias_t);
    if (c.has_peephole) args[DNNL_ARG_WEIGHTS_PEEPHOLE] = bind(s_.peephole, s_.peephole_t);
    if (workspace_) args[DNNL_ARG_WORKSPACE] = workspace_;

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
  Reorderer w_layer_reorder_, w_iter_reorder_;
  dnnl::memory w_layer_packed_, w_iter_packed_, workspace_;
  Tensor x_buf_, h0_buf_, c0_buf_, y_buf_, yh_buf_, yc_buf_;
};

// The gradient on oneDNN: the forward pass again in forward_training mode (for the
// workspace), then the backward primitive (the forward primitive descriptor as its hint);
// the gradients are mapped back to ONNX's layouts and gate order.
class DnnlRnnGradKernel final : public Kernel {
 public:
  explicit DnnlRnnGradKernel(const RnnConfig& c) : s_(c, dnnl::prop_kind::forward_training) {
    const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden, G = c.gates;
    const bool lstm = c.cell == CellKind::Lstm;
    dnnl::engine& eng = cpu_engine();
    const auto bwd = dnnl::prop_kind::backward;
    const dnnl::memory::desc& sl = s_.src_layer;
    const dnnl::memory::desc& st = s_.state;
    const dnnl::memory::desc& dl = s_.dst_layer;
    const dnnl::memory::desc& wl = s_.w_layer_any;
    const dnnl::memory::desc& wi = s_.w_iter_any;
    switch (c.cell) {
      case CellKind::Rnn: {
        dnnl::vanilla_rnn_backward::desc desc(bwd, s_.activation, s_.dir, sl, st, wl, wi, s_.bias, dl, st, sl, st, wl, wi,
                                              s_.bias, dl, st, dnnl::rnn_flags::undef, s_.alpha);
        bwd_pd_ = dnnl::vanilla_rnn_backward::primitive_desc(
            desc, eng, std::get<dnnl::vanilla_rnn_forward::primitive_desc>(s_.fwd_pd));
        break;
      }
      case CellKind::Gru:
        if (s_.lbr) {
          dnnl::lbr_gru_backward::desc desc(bwd, s_.dir, sl, st, wl, wi, s_.bias, dl, st, sl, st, wl, wi, s_.bias, dl, st);
          bwd_pd_ = dnnl::lbr_gru_backward::primitive_desc(desc, eng,
                                                           std::get<dnnl::lbr_gru_forward::primitive_desc>(s_.fwd_pd));
        } else {
          dnnl::gru_backward::desc desc(bwd, s_.dir, sl, st, wl, wi, s_.bias, dl, st, sl, st, wl, wi, s_.bias, dl, st);
          bwd_pd_ = dnnl::gru_backward::primitive_desc(desc, eng, std::get<dnnl::gru_forward::primitive_desc>(s_.fwd_pd));
        }
        break;
      case CellKind::Lstm: {
        dnnl::lstm_backward::desc desc(bwd, s_.dir, sl, st, st, wl, wi, s_.peephole, s_.bias, dl, st, st, sl, st, st, wl,
                                       wi, s_.peephole, s_.bias, dl, st, st);
        bwd_pd_ = dnnl::lstm_backward::primitive_desc(desc, eng, std::get<dnnl::lstm_forward::primitive_desc>(s_.fwd_pd));
        break;
      }
    }
    std::visit([&](const auto& pd) { fwd_ = dnnl::primitive(pd); }, s_.fwd_pd);
    std::visit([&](const auto& pd) { bwd_ = dnnl::primitive(pd); }, bwd_pd_);

    fwd_w_layer_reorder_ = Reorderer(s_.w_layer, s_.fwd_arg(DNNL_ARG_WEIGHTS_LAYER));
    fwd_w_iter_reorder_ = Reorderer(s_.w_iter, s_.fwd_arg(DNNL_ARG_WEIGHTS_ITER));
    bwd_w_layer_reorder_ = Reorderer(s_.w_layer, bwd_arg(DNNL_ARG_WEIGHTS_LAYER));
    bwd_w_iter_reorder_ = Reorderer(s_.w_iter, bwd_arg(DNNL_ARG_WEIGHTS_ITER));
    const dnnl::memory::desc ws = s_.fwd_arg(DNNL_ARG_WORKSPACE);
    if (ws.get_size() > 0) workspace_ = dnnl::memory(ws, eng);
    // The weight gradients come in the backward primitive's layout, and go through plain
    // ldigo back to ONNX's.
    dw_layer_ = dnnl::memory(bwd_arg(DNNL_ARG_DIFF_WEIGHTS_LAYER), eng);
    dw_iter_ = dnnl::memory(bwd_arg(DNNL_ARG_DIFF_WEIGHTS_ITER), eng);
    dw_layer_reorder_ = Reorderer(dw_layer_.get_desc(), s_.w_layer);
    dw_iter_reorder_ = Reorderer(dw_iter_.get_desc(), s_.w_iter);
    dbias_t_ = Tensor(DType::Float, {D, s_.bias_gates, H});
    if (c.has_peephole) dpeep_t_ = Tensor(DType::Float, {D, 3, H});

    // Staging. Absent initial states and output gradients stay all zeros.
    if (c.batch_first) {
      x_buf_ = Tensor(DType::Float, {S, N, I});
      dx_buf_ = Tensor(DType::Float, {S, N, I});
      dh0_buf_ = Tensor(DType::Float, {D, N, H});
      if (lstm) dc0_buf_ = Tensor(DType::Float, {D, N, H});
    }
    if (c.batch_first || !c.has_h0) h0_buf_ = Tensor(DType::Float, {D, N, H});
    if (lstm && (c.batch_first || !c.has_c0)) c0_buf_ = Tensor(DType::Float, {D, N, H});
    y_buf_ = Tensor(DType::Float, {S, N, D * H});
    yh_buf_ = Tensor(DType::Float, {D, N, H});
    if (lstm) yc_buf_ = Tensor(DType::Float, {D, N, H});
    dy_buf_ = Tensor(DType::Float, {S, N, D * H});
    dyh_buf_ = Tensor(DType::Float, {D, N, H});
    if (lstm) dyc_buf_ = Tensor(DType::Float, {D, N, H});
  }

  void run(KernelContext& ctx) override {
    const RnnConfig& c = s_.c;
    const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden, G = c.gates, GH = G * H;
    const bool lstm = c.cell == CellKind::Lstm;
    if (c.has_lens) {
      const std::vector<int64_t> lens = sequence_lengths(c, ctx);
      if (std::any_of(lens.begin(), lens.end(), [&](int64_t len) { return len != S; })) {
        run_reference_grad<float>(c, ctx);  // oneDNN has no per-entry sequence lengths
        return;
      }
    }
    s_.load_weights(ctx);

    // Forward (training).
    std::unordered_map<int, dnnl::memory> args;
    const Tensor& x = ctx.input(kX);
    if (c.batch_first) swap_leading(x.data<float>(), x_buf_.data<float>(), N, S, I);
    args[DNNL_ARG_SRC_LAYER] = bind(s_.src_layer, c.batch_first ? x_buf_ : x);
    args[DNNL_ARG_SRC_ITER] = bind(s_.state, s_.load_state(ctx, kInitialH, c.has_h0, h0_buf_));
    if (lstm) args[DNNL_ARG_SRC_ITER_C] = bind(s_.state, s_.load_state(ctx, kInitialC, c.has_c0, c0_buf_));
    args[DNNL_ARG_WEIGHTS_LAYER] = fwd_w_layer_reorder_(bind(s_.w_layer, s_.w_layer_t), fwd_w_layer_packed_);
    args[DNNL_ARG_WEIGHTS_ITER] = fwd_w_iter_reorder_(bind(s_.w_iter, s_.w_iter_t), fwd_w_iter_packed_);
    args[DNNL_ARG_BIAS] = bind(s_.bias, s_.bias_t);
    if (c.has_peephole) args[DNNL_ARG_WEIGHTS_PEEPHOLE] = bind(s_.peephole, s_.peephole_t);
    if (workspace_) args[DNNL_ARG_WORKSPACE] = workspace_;
    args[DNNL_ARG_DST_LAYER] = bind(s_.dst_layer, y_buf_);
    args[DNNL_ARG_DST_ITER] = bind(s_.state, yh_buf_);
    if (lstm) args[DNNL_ARG_DST_ITER_C] = bind(s_.state, yc_buf_);
    execute(fwd_, args);

    // Backward: the same arguments with the backward primitive's weight layouts, plus the
    // output gradients in oneDNN's layouts and the input gradients.
    const int nf = forward_input_count(c.cell);
    args[DNNL_ARG_WEIGHTS_LAYER] = bwd_w_layer_reorder_(bind(s_.w_layer, s_.w_layer_t), bwd_w_layer_packed_);
    args[DNNL_ARG_WEIGHTS_ITER] = bwd_w_iter_reorder_(bind(s_.w_iter, s_.w_iter_t), bwd_w_iter_packed_);
    args[DNNL_ARG_DIFF_DST_LAYER] = bind(s_.dst_layer, load_dy(ctx, nf));
    args[DNNL_ARG_DIFF_DST_ITER] = bind(s_.state, load_dstate(ctx, nf + 1, dyh_buf_));
    if (lstm) args[DNNL_ARG_DIFF_DST_ITER_C] = bind(s_.state, load_dstate(ctx, nf + 2, dyc_buf_));

    Tensor& dx = ctx.output(kGradX, DType::Float, c.batch_first ? Shape{N, S, I} : Shape{S, N, I});
    args[DNNL_ARG_DIFF_SRC_LAYER] = bind(s_.src_layer, c.batch_first ? dx_buf_ : dx);
    Tensor& dh0 = ctx.output(kGradH0, DType::Float, c.state_shape());
    args[DNNL_ARG_DIFF_SRC_ITER] = bind(s_.state, c.batch_first ? dh0_buf_ : dh0);
    Tensor* dc0 = lstm ? &ctx.output(kGradC0, DType::Float, c.state_shape()) : nullptr;
    if (lstm) args[DNNL_ARG_DIFF_SRC_ITER_C] = bind(s_.state, c.batch_first ? dc0_buf_ : *dc0);
    // The backward primitive accumulates into the parameter gradients.
    zero(dw_layer_);
    zero(dw_iter_);
    std::fill_n(dbias_t_.data<float>(), dbias_t_.numel(), 0.f);
    args[DNNL_ARG_DIFF_WEIGHTS_LAYER] = dw_layer_;
    args[DNNL_ARG_DIFF_WEIGHTS_ITER] = dw_iter_;
    args[DNNL_ARG_DIFF_BIAS] = bind(s_.bias, dbias_t_);
    if (c.has_peephole) {
      std::fill_n(dpeep_t_.data<float>(), dpeep_t_.numel(), 0.f);
      args[DNNL_ARG_DIFF_WEIGHTS_PEEPHOLE] = bind(s_.peephole, dpeep_t_);
    }
    execute(bwd_, args);

    // Back to ONNX.
    if (c.batch_first) {
      swap_leading(dx_buf_.data<float>(), dx.data<float>(), S, N, I);
      swap_leading(dh0_buf_.data<float>(), dh0.data<float>(), D, N, H);
      if (dc0) swap_leading(dc0_buf_.data<float>(), dc0->data<float>(), D, N, H);
    }
    const dnnl::memory dwl = dw_layer_reorder_(dw_layer_, dw_layer_plain_);
    const dnnl::memory dwi = dw_iter_reorder_(dw_iter_, dw_iter_plain_);
    ldigo_to_weights(static_cast<const float*>(dwl.get_data_handle()),
                     ctx.output(kGradW, DType::Float, {D, GH, I}).data<float>(), D, G, H, I, s_.perm);
    ldigo_to_weights(static_cast<const float*>(dwi.get_data_handle()),
                     ctx.output(kGradR, DType::Float, {D, GH, H}).data<float>(), D, G, H, H, s_.perm);
    // One oneDNN bias per gate is both Wb and Rb of ONNX, except linear-before-reset GRU's
    // candidate gate, whose recurrence bias is oneDNN's extra row G.
    float* db = ctx.output(kGradB, DType::Float, {D, 2 * GH}).data<float>();
    const float* dbias = dbias_t_.data<float>();
    for (int64_t d = 0; d < D; ++d) {
      const float* src = dbias + d * s_.bias_gates * H;
      float* wb = db + d * 2 * GH;
      float* rb = wb + GH;
      for (int64_t g = 0; g < G; ++g) {
        const int64_t onnx = s_.perm[g] * H;
        std::copy_n(src + g * H, H, wb + onnx);
        std::copy_n(src + (s_.lbr && g == G - 1 ? G : g) * H, H, rb + onnx);
      }
    }
    if (lstm) {
      float* dp = ctx.output(kGradP, DType::Float, {D, 3 * H}).data<float>();
      if (c.has_peephole) {
        for (int64_t d = 0; d < D; ++d)
          for (int g = 0; g < 3; ++g)
            std::copy_n(dpeep_t_.data<float>() + (d * 3 + g) * H, H, dp + (d * 3 + kPeepholeFromOnnx[g]) * H);
      } else {
        std::fill_n(dp, D * 3 * H, 0.f);
      }
    }
  }

 private:
  using BackwardPd = std::variant<dnnl::vanilla_rnn_backward::primitive_desc, dnnl::gru_backward::primitive_desc,
                                  dnnl::lbr_gru_backward::primitive_desc, dnnl::lstm_backward::primitive_desc>;

  dnnl::memory::desc bwd_arg(int arg) const {
    return std::visit([&](const auto& pd) { return pd.query_md(dnnl::query::exec_arg_md, arg); }, bwd_pd_);
  }

  static void zero(const dnnl::memory& m) { std::memset(m.get_data_handle(), 0, m.get_desc().get_size()); }

  // The gradient of Y in oneDNN's [T, N, D*H] (zeros when none flows).
  const Tensor& load_dy(const KernelContext& ctx, int index) {
    const RnnConfig& c = s_.c;
    const int64_t D = c.dirs, N = c.batch, S = c.seq, H = c.hidden;
    if (!ctx.has_input(index)) {
      if (!dy_zeroed_) std::fill_n(dy_buf_.data<float>(), dy_buf_.numel(), 0.f);
      dy_zeroed_ = true;
      return dy_buf_;
    }
    dy_zeroed_ = false;
    const Tensor& dy = ctx.input(index);
    if (!c.batch_first && D == 1) return dy;  // [T, 1, N, H] is [T, N, H]
    const float* src = dy.data<float>();
    float* dst = dy_buf_.data<float>();
    if (c.batch_first) {
      swap_leading(src, dst, N, S, D * H);  // [N, T, D, H] -> [T, N, D*H]
    } else {
      for (int64_t t = 0; t < S; ++t) swap_leading(src + t * D * N * H, dst + t * N * D * H, D, N, H);
    }
    return dy_buf_;
  }

  // The gradient of a final state in oneDNN's [D, N, H] (zeros when none flows).
  const Tensor& load_dstate(const KernelContext& ctx, int index, Tensor& buf) {
    const RnnConfig& c = s_.c;
    if (!ctx.has_input(index)) {
      std::fill_n(buf.data<float>(), buf.numel(), 0.f);
      return buf;
    }
    const Tensor& g = ctx.input(index);
    if (!c.batch_first) return g;
    swap_leading(g.data<float>(), buf.data<float>(), c.batch, c.dirs, c.hidden);
    return buf;
  }

  DnnlRnnSetup s_;
  BackwardPd bwd_pd_;
  dnnl::primitive fwd_, bwd_;
  Reorderer fwd_w_layer_reorder_, fwd_w_iter_reorder_, bwd_w_layer_reorder_, bwd_w_iter_reorder_;
  Reorderer dw_layer_reorder_, dw_iter_reorder_;
  dnnl::memory fwd_w_layer_packed_, fwd_w_iter_packed_, bwd_w_layer_packed_, bwd_w_iter_packed_, workspace_;
  dnnl::memory dw_layer_, dw_iter_, dw_layer_plain_, dw_iter_plain_;
  Tensor dbias_t_, dpeep_t_;
  Tensor x_buf_, h0_buf_, c0_buf_, y_buf_, yh_buf_, yc_buf_;
  Tensor dy_buf_, dyh_buf_, dyc_buf_, dx_buf_, dh0_buf_, dc0_buf_;
  bool dy_zeroed_ = false;
};

// Whether oneDNN's cells compute exactly this node.
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

KernelFactory rnn_grad_factory(CellKind cell) {
  return [cell](const Node& node, const std::vector<InputInfo>& in) -> std::unique_ptr<Kernel> {
    const size_t nf = static_cast<size_t>(forward_input_count(cell));
    const size_t ng = cell == CellKind::Lstm ? 3 : 2;
    if (in.size() > nf + ng) fail(node, "has more than " + std::to_string(nf + ng) + " inputs");
    std::vector<InputInfo> fwd(in.begin(), in.begin() + std::min(in.size(), nf));
    RnnConfig c = parse_config(cell, node, fwd, /*grad*/ true);
    const Shape shapes[3] = {c.y_shape(), c.state_shape(), c.state_shape()};
    const char* names[3] = {"the gradient of Y", "the gradient of Y_h", "the gradient of Y_c"};
    for (size_t k = 0; k < ng; ++k) {
      const size_t i = nf + k;
      if (i >= in.size() || !in[i].present) continue;
      if (in[i].dtype != c.dtype) fail(node, std::string(names[k]) + " has element type " + dtype_name(in[i].dtype));
      if (in[i].shape != shapes[k])
        fail_shape(node, std::string(names[k]) + " has shape " + shape_str(in[i].shape) + ", expected " + shape_str(shapes[k]));
    }
    if (dnnl_supports(c)) {
      try {
        auto kernel = std::make_unique<DnnlRnnGradKernel>(c);
        spdlog::debug("{}: oneDNN backward", node.describe());
        return kernel;
      } catch (const dnnl::error& e) {
        spdlog::debug("{}: oneDNN has no backward for this configuration ({}), using the reference loops",
                      node.describe(), e.what());
      }
    } else {
      spdlog::debug("{}: reference backward loops (configuration outside oneDNN's cells)", node.describe());
    }
    return make_reference_grad_kernel(c);
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

}  // namespace

void register_rnn_ops(Registry& r) {
  r.add({"", "RNN", 1, INT_MAX, rnn_factory(CellKind::Rnn), "oneDNN vanilla_rnn", rnn_gradient(CellKind::Rnn, "RNNGrad"),
         {kSeqLens}});
  r.add({"", "GRU", 1, INT_MAX, rnn_factory(CellKind::Gru), "oneDNN gru / lbr_gru", rnn_gradient(CellKind::Gru, "GRUGrad"),
         {kSeqLens}});
  r.add({"", "LSTM", 1, INT_MAX, rnn_factory(CellKind::Lstm), "oneDNN lstm", rnn_gradient(CellKind::Lstm, "LSTMGrad"),
         {kSeqLens}});
  const char* d = graph::kTrainingDomain;
  r.add({d, "RNNGrad", 1, INT_MAX, rnn_grad_factory(CellKind::Rnn), "oneDNN vanilla_rnn_backward"});
  r.add({d, "GRUGrad", 1, INT_MAX, rnn_grad_factory(CellKind::Gru), "oneDNN gru_backward / lbr_gru_backward"});
  r.add({d, "LSTMGrad", 1, INT_MAX, rnn_grad_factory(CellKind::Lstm), "oneDNN lstm_backward"});
}

}  // namespace onnxtrain::ops
