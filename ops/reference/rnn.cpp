#include "ops/reference/rnn.h"

#include <cmath>

namespace onnxtrain::reference {
namespace {

double sigmoid(double v) { return 1.0 / (1.0 + std::exp(-v)); }

int64_t gates_of(Cell c) { return c == Cell::Rnn ? 1 : c == Cell::Gru ? 3 : 4; }

double at_or_zero(const Array& a, int64_t i) { return a.data.empty() ? 0.0 : a[i]; }

// sum_k m[row, k] * v[k] for m [rows, len] starting at `base`.
double dot_row(const Array& m, int64_t base, int64_t row, int64_t len, const std::vector<double>& v) {
  double s = 0;
  for (int64_t k = 0; k < len; ++k) s += m[base + row * len + k] * v[k];
  return s;
}

}  // namespace

RnnOutputs rnn(const RnnParams& p, const RnnInputs& in) {
  const int64_t T = in.x.shape[0], N = in.x.shape[1], I = in.x.shape[2], H = p.hidden, D = p.directions;
  const int64_t G = gates_of(p.cell), GH = G * H;
  RnnOutputs out{Array({T, D, N, H}), Array({D, N, H}), Array({D, N, H})};
  for (int64_t d = 0; d < D; ++d)
    for (int64_t n = 0; n < N; ++n) {
      const int64_t len = in.lens.empty() ? T : in.lens[n];
      const bool backwards = d == 1 || p.reverse;
      const int64_t wb = d * GH * I, rb = d * GH * H, bb = d * 2 * GH;
      std::vector<double> h(H), c(H), x(I);
      for (int64_t j = 0; j < H; ++j) {
        h[j] = at_or_zero(in.h0, (d * N + n) * H + j);
        c[j] = at_or_zero(in.c0, (d * N + n) * H + j);
      }
      // gate g of row j: x.W + Wb (input part), h.R + Rb (recurrent part)
      auto wx = [&](int64_t g, int64_t j) { return dot_row(in.w, wb, g * H + j, I, x) + at_or_zero(in.b, bb + g * H + j); };
      auto rh = [&](int64_t g, int64_t j, const std::vector<double>& hv) {
        return dot_row(in.r, rb, g * H + j, H, hv) + at_or_zero(in.b, bb + GH + g * H + j);
      };
      for (int64_t step = 0; step < len; ++step) {
        const int64_t t = backwards ? len - 1 - step : step;
        for (int64_t i = 0; i < I; ++i) x[i] = in.x[(t * N + n) * I + i];
        std::vector<double> hn(H), cn(H);
        for (int64_t j = 0; j < H; ++j) {
          if (p.cell == Cell::Rnn) {
            hn[j] = std::tanh(wx(0, j) + rh(0, j, h));
          } else if (p.cell == Cell::Gru) {  // gates z, r, h
            const double z = sigmoid(wx(0, j) + rh(0, j, h));
            double cand;
            if (p.linear_before_reset) {
              const double r = sigmoid(wx(1, j) + rh(1, j, h));
              cand = std::tanh(wx(2, j) + r * rh(2, j, h));
            } else {
              std::vector<double> rhv(H);
              for (int64_t k = 0; k < H; ++k) rhv[k] = sigmoid(wx(1, k) + rh(1, k, h)) * h[k];
              cand = std::tanh(wx(2, j) + rh(2, j, rhv));
            }
            hn[j] = (1 - z) * cand + z * h[j];
          } else {  // gates i, o, f, c; peepholes i, o, f
            const double pi = at_or_zero(in.p, d * 3 * H + j), po = at_or_zero(in.p, d * 3 * H + H + j),
                         pf = at_or_zero(in.p, d * 3 * H + 2 * H + j);
            const double ig = sigmoid(wx(0, j) + rh(0, j, h) + pi * c[j]);
            const double fg = sigmoid(wx(2, j) + rh(2, j, h) + pf * c[j]);
            const double cg = std::tanh(wx(3, j) + rh(3, j, h));
            cn[j] = fg * c[j] + ig * cg;
            const double og = sigmoid(wx(1, j) + rh(1, j, h) + po * cn[j]);
            hn[j] = og * std::tanh(cn[j]);
          }
        }
        h = hn;
        if (p.cell == Cell::Lstm) c = cn;
        for (int64_t j = 0; j < H; ++j) out.y[((t * D + d) * N + n) * H + j] = h[j];
      }
      for (int64_t j = 0; j < H; ++j) {
        out.yh[(d * N + n) * H + j] = h[j];
        out.yc[(d * N + n) * H + j] = c[j];
      }
    }
  return out;
}

std::vector<Array> rnn_backward(const RnnParams& p, const RnnInputs& in, const Array& dy, const Array& dyh,
                                const Array& dyc) {
  auto loss = [&](const RnnInputs& v) {
    const RnnOutputs o = rnn(p, v);
    double s = 0;
    for (int64_t i = 0; i < dy.numel(); ++i) s += o.y[i] * dy[i];
    for (int64_t i = 0; i < dyh.numel(); ++i) s += o.yh[i] * dyh[i];
    for (int64_t i = 0; i < dyc.numel(); ++i) s += o.yc[i] * dyc[i];
    return s;
  };
  constexpr double kStep = 1e-5;
  RnnInputs work = in;
  Array RnnInputs::*const members[] = {&RnnInputs::x, &RnnInputs::w, &RnnInputs::r, &RnnInputs::b,
                                       &RnnInputs::h0, &RnnInputs::c0, &RnnInputs::p};
  std::vector<Array> grads;
  for (Array RnnInputs::*m : members) {
    Array& a = work.*m;
    Array g(a.shape);
    for (int64_t i = 0; i < a.numel(); ++i) {
      const double keep = a[i];
      a[i] = keep + kStep;
      const double up = loss(work);
      a[i] = keep - kStep;
      const double down = loss(work);
      a[i] = keep;
      g[i] = (up - down) / (2 * kStep);
    }
    grads.push_back(a.data.empty() ? Array() : g);
  }
  return grads;
}

}  // namespace onnxtrain::reference
