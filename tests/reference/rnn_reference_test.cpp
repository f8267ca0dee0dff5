// RNN / GRU / LSTM (oneDNN vanilla_rnn, gru / lbr_gru and lstm forward, and the RNNGrad /
// GRUGrad / LSTMGrad backward) against the naive reference on random odd sizes: every
// direction, linear_before_reset, optional bias, initial states and peepholes. Sequence
// lengths run on the kernels' own loops (oneDNN has no per-sequence lengths); one test
// covers them too.
#include <gtest/gtest.h>

#include "ops/reference/rnn.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using namespace onnxtrain::test;
using reference::Cell;

namespace {

void check(Cell cell, bool with_lens, std::mt19937& rng) {
  reference::RnnParams p;
  p.cell = cell;
  p.hidden = pick(rng, {1, 3, 5, 7});
  const int64_t dir = pick(rng, {0, 1, 2});
  p.directions = dir == 2 ? 2 : 1;
  p.reverse = dir == 1;
  p.linear_before_reset = cell == Cell::Gru && pick(rng, {0, 1});
  const int64_t T = pick(rng, {1, 3, 5}), N = pick(rng, {1, 2, 3}), I = pick(rng, {1, 3, 5}), H = p.hidden, D = p.directions;
  const int64_t G = cell == Cell::Rnn ? 1 : cell == Cell::Gru ? 3 : 4;
  const char* op = cell == Cell::Rnn ? "RNN" : cell == Cell::Gru ? "GRU" : "LSTM";
  const bool lstm = cell == Cell::Lstm;
  std::string attrs = "hidden_size = " + std::to_string(H) + ", direction = \"" +
                      (dir == 0 ? "forward" : dir == 1 ? "reverse" : "bidirectional") + "\"";
  if (cell == Cell::Gru) attrs += ", linear_before_reset = " + std::to_string(p.linear_before_reset);
  reference::RnnInputs in;
  in.x = random_array({T, N, I}, rng);
  in.w = random_array({D, G * H, I}, rng);
  in.r = random_array({D, G * H, H}, rng);
  const bool with_b = pick(rng, {0, 1, 1}), with_h0 = pick(rng, {0, 1}), with_c0 = lstm && pick(rng, {0, 1}),
             with_p = lstm && pick(rng, {0, 1});
  if (with_b) in.b = random_array({D, 2 * G * H}, rng);
  if (with_h0) in.h0 = random_array({D, N, H}, rng);
  if (with_c0) in.c0 = random_array({D, N, H}, rng);
  if (with_p) in.p = random_array({D, 3 * H}, rng);
  Array lens;
  if (with_lens) {
    for (int64_t n = 0; n < N; ++n) in.lens.push_back(std::uniform_int_distribution<int64_t>(0, T)(rng));
    lens = Array({N}, std::vector<double>(in.lens.begin(), in.lens.end()));
  }
  SCOPED_TRACE(std::string(op) + " T " + std::to_string(T) + " N " + std::to_string(N) + " I " + std::to_string(I) + " <" +
               attrs + ">" + (with_b ? " B" : "") + (with_h0 ? " H0" : "") + (with_c0 ? " C0" : "") + (with_p ? " P" : "") +
               (with_lens ? " lens " + ints(in.lens) : ""));
  // Forward inputs in ONNX order; absent ones keep their position empty.
  std::vector<NodeInput> fwd{{"X", in.x}, {"W", in.w}, {"R", in.r}, {with_b ? "B" : "", in.b},
                             {with_lens ? "L" : "", lens, true}, {with_h0 ? "H0" : "", in.h0}};
  if (lstm) fwd.insert(fwd.end(), {{with_c0 ? "C0" : "", in.c0}, {with_p ? "P" : "", in.p}});
  const reference::RnnOutputs want = reference::rnn(p, in);
  // One step sums I + H products; the recurrence carries errors over T steps.
  const double tol = accumulation_tolerance(T * (I + H + 2), 2.0);
  std::vector<std::pair<std::string, size_t>> outs{{"Y", 4}, {"Yh", 3}};
  if (lstm) outs.push_back({"Yc", 3});
  auto got = run_node(op, attrs, fwd, outs);
  EXPECT_EQ(compare(got["Y"], want.y, tol), "") << "Y";
  EXPECT_EQ(compare(got["Yh"], want.yh, tol), "") << "Y_h";
  if (lstm) {
    EXPECT_EQ(compare(got["Yc"], want.yc, tol), "") << "Y_c";
  }

  // The gradient rule leaves out output gradients that do not flow (zeros).
  const int64_t dropped = pick(rng, {-1, -1, 0, 1, 2});
  auto output_grad = [&](int64_t k, const Array& out) { return dropped == k ? Array(out.shape) : random_array(out.shape, rng); };
  const Array dy = output_grad(0, want.y), dyh = output_grad(1, want.yh);
  const Array dyc = lstm ? output_grad(2, want.yc) : Array();
  SCOPED_TRACE(dropped < 0 ? "every output gradient" : "output gradient " + std::to_string(dropped) + " left out");
  const std::vector<Array> g = reference::rnn_backward(p, in, dy, dyh, dyc);
  std::vector<NodeInput> bwd = fwd;
  if (!lstm) bwd.resize(6);
  bwd.insert(bwd.end(), {{dropped == 0 ? "" : "dY", dy}, {dropped == 1 ? "" : "dYh", dyh}});
  if (lstm) bwd.push_back({dropped == 2 ? "" : "dYc", dyc});
  while (bwd.back().name.empty()) bwd.pop_back();
  const std::vector<std::string> names{"dX", "dW", "dR", "dB", "dH0", "dC0", "dP"};
  const std::vector<size_t> ranks{3, 3, 3, 2, 3, 3, 2};
  outs.clear();
  for (size_t i = 0; i < (lstm ? 7u : 5u); ++i) outs.push_back({names[i], ranks[i]});
  auto grads = run_node(std::string("ai.onnxtrain.") + op + "Grad", attrs, bwd, outs);
  // Weight gradients sum over T steps and N sequences.
  const double gtol = accumulation_tolerance(T * N * (I + H + 2), 4.0);
  for (size_t i = 0; i < outs.size(); ++i)
    if (!g[i].data.empty()) {
      EXPECT_EQ(compare(grads[names[i]], g[i], gtol), "") << names[i];
    }
}

}  // namespace

TEST(RnnReference, RnnForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(31);
  for (int i = 0; i < 30; ++i) check(Cell::Rnn, false, rng);
}

TEST(RnnReference, GruForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(32);
  for (int i = 0; i < 30; ++i) check(Cell::Gru, false, rng);
}

TEST(RnnReference, LstmForwardAndGradMatchOnRandomOddShapes) {
  std::mt19937 rng(33);
  for (int i = 0; i < 30; ++i) check(Cell::Lstm, false, rng);
}

// Per-sequence lengths (0 to T) take the kernels' own loops, not oneDNN.
TEST(RnnReference, SequenceLengthsMatchForEveryCell) {
  std::mt19937 rng(34);
  for (Cell cell : {Cell::Rnn, Cell::Gru, Cell::Lstm})
    for (int i = 0; i < 8; ++i) check(cell, true, rng);
}
