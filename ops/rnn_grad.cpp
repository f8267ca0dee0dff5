// Backward of the recurrent layers RNN, GRU and LSTM (forward, configuration, the ONNX vs
// oneDNN mapping and the gradient rule that emits these ops in rnn.cpp): the ai.onnxtrain
// RNNGrad / GRUGrad / LSTMGrad kernels, reference and oneDNN, and their registration.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <variant>

#include <spdlog/spdlog.h>

#include "ops/dnnl_utils.h"
#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"
#include "ops/rnn_common.h"

namespace onnxtrain::ops {

namespace rnn_impl {

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

// ---------------------------------------------------------------------------------------
// Gradients: ai.onnxtrain RNNGrad / GRUGrad / LSTMGrad.
//   inputs:  the forward node's inputs (X, W, R, B, sequence_lens, initial_h[, initial_c, P]),
//            then the gradients of its outputs (dY, dY_h[, dY_c]); omitted ones are zero.
//   outputs: dX, dW, dR, dB, dinitial_h[, dinitial_c, dP], shaped like the forward inputs.
// Both kernels recompute the forward pass (the ONNX node has no output to keep oneDNN's
// workspace or our per-step records in).


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

// The gradient on oneDNN: the forward pass again in forward_training mode (for the
// workspace), then the backward primitive (the forward primitive descriptor as its hint);
// the gradients are mapped back to ONNX's layouts and gate order.
class DnnlRnnGradKernel final : public Kernel {
 public:
  explicit DnnlRnnGradKernel(const RnnConfig& c) : s_(c, dnnl::prop_kind::forward_training) {
    const int64_t D = c.dirs, N = c.batch, S = c.seq, I = c.input, H = c.hidden;
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
            desc, arena_scratchpad(), eng, std::get<dnnl::vanilla_rnn_forward::primitive_desc>(s_.fwd_pd));
        break;
      }
      case CellKind::Gru:
        if (s_.lbr) {
          dnnl::lbr_gru_backward::desc desc(bwd, s_.dir, sl, st, wl, wi, s_.bias, dl, st, sl, st, wl, wi, s_.bias, dl, st);
          bwd_pd_ = dnnl::lbr_gru_backward::primitive_desc(desc, arena_scratchpad(), eng,
                                                           std::get<dnnl::lbr_gru_forward::primitive_desc>(s_.fwd_pd));
        } else {
          dnnl::gru_backward::desc desc(bwd, s_.dir, sl, st, wl, wi, s_.bias, dl, st, sl, st, wl, wi, s_.bias, dl, st);
          bwd_pd_ = dnnl::gru_backward::primitive_desc(desc, arena_scratchpad(), eng, std::get<dnnl::gru_forward::primitive_desc>(s_.fwd_pd));
        }
        break;
      case CellKind::Lstm: {
        dnnl::lstm_backward::desc desc(bwd, s_.dir, sl, st, st, wl, wi, s_.peephole, s_.bias, dl, st, st, sl, st, st, wl,
                                       wi, s_.peephole, s_.bias, dl, st, st);
        bwd_pd_ = dnnl::lstm_backward::primitive_desc(desc, arena_scratchpad(), eng, std::get<dnnl::lstm_forward::primitive_desc>(s_.fwd_pd));
        break;
      }
    }
    std::visit([&](const auto& pd) { fwd_ = dnnl::primitive(pd); }, s_.fwd_pd);
    std::visit([&](const auto& pd) { bwd_ = dnnl::primitive(pd); }, bwd_pd_);

    bwd_w_layer_reorder_ = Reorderer(s_.w_layer, bwd_arg(DNNL_ARG_WEIGHTS_LAYER));
    bwd_w_iter_reorder_ = Reorderer(s_.w_iter, bwd_arg(DNNL_ARG_WEIGHTS_ITER));
    // The weight gradients come in the backward primitive's layout, and go through plain
    // ldigo back to ONNX's.
    dw_layer_ = dnnl::memory(bwd_arg(DNNL_ARG_DIFF_WEIGHTS_LAYER), eng);
    dw_iter_ = dnnl::memory(bwd_arg(DNNL_ARG_DIFF_WEIGHTS_ITER), eng);
    dw_layer_reorder_ = Reorderer(dw_layer_.get_desc(), s_.w_layer);
    dw_iter_reorder_ = Reorderer(dw_iter_.get_desc(), s_.w_iter);
    dbias_t_ = Tensor(DType::Float, {D, s_.bias_gates, H});
    if (c.has_peephole) dpeep_t_ = Tensor(DType::Float, {D, 3, H});

    // Staging. Absent output gradients stay all zeros.
    if (c.batch_first) {
      dx_buf_ = Tensor(DType::Float, {S, N, I});
      dh0_buf_ = Tensor(DType::Float, {D, N, H});
      if (lstm) dc0_buf_ = Tensor(DType::Float, {D, N, H});
    }
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
    // Forward (training).
    std::unordered_map<int, dnnl::memory> args;
    s_.bind_forward_inputs(ctx, args);
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
  Reorderer bwd_w_layer_reorder_, bwd_w_iter_reorder_;
  Reorderer dw_layer_reorder_, dw_iter_reorder_;
  dnnl::memory bwd_w_layer_packed_, bwd_w_iter_packed_;
  dnnl::memory dw_layer_, dw_iter_, dw_layer_plain_, dw_iter_plain_;
  Tensor dbias_t_, dpeep_t_;
  Tensor y_buf_, yh_buf_, yc_buf_;
  Tensor dy_buf_, dyh_buf_, dyc_buf_, dx_buf_, dh0_buf_, dc0_buf_;
  bool dy_zeroed_ = false;
};

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

}  // namespace rnn_impl

void register_rnn_grad_ops(Registry& r) {
  using namespace rnn_impl;
  const char* d = graph::kTrainingDomain;
  r.add({d, "RNNGrad", 1, INT_MAX, rnn_grad_factory(CellKind::Rnn), "oneDNN vanilla_rnn_backward"});
  r.add({d, "GRUGrad", 1, INT_MAX, rnn_grad_factory(CellKind::Gru), "oneDNN gru_backward / lbr_gru_backward"});
  r.add({d, "LSTMGrad", 1, INT_MAX, rnn_grad_factory(CellKind::Lstm), "oneDNN lstm_backward"});
}

}  // namespace onnxtrain::ops
