#pragma once
// Naive RNN / GRU / LSTM forward (ONNX formulas with the default activations, layout 0) and
// the gradients of all inputs. The backward is the vector-Jacobian product of this forward
// by central differences in double: independent of any hand-derived backpropagation through
// time, exact to ~1e-8 for these smooth cells, and cheap at test sizes.
#include <vector>

#include "ops/reference/array.h"

namespace onnxtrain::reference {

enum class Cell { Rnn, Gru, Lstm };

struct RnnParams {
  Cell cell = Cell::Rnn;
  int64_t hidden = 1;
  int64_t directions = 1;  // 2: bidirectional (direction 1 runs in reverse)
  bool reverse = false;    // with directions == 1
  bool linear_before_reset = false;  // GRU
};

// X [T, N, I], W [D, G*H, I], R [D, G*H, H], B [D, 2*G*H], H0/C0 [D, N, H], P [D, 3*H].
// Empty arrays are absent inputs (zeros); empty `lens` means every sequence is T long.
struct RnnInputs {
  Array x, w, r, b, h0, c0, p;
  std::vector<int64_t> lens;
};

struct RnnOutputs {
  Array y, yh, yc;  // Y [T, D, N, H] (zeros past a sequence's end), Y_h and Y_c [D, N, H]
};

RnnOutputs rnn(const RnnParams& p, const RnnInputs& in);

// Gradients of the present inputs (same order as RnnInputs: dX, dW, dR, dB, dH0, dC0, dP;
// empty where the input is absent) of sum(Y*dY) + sum(Y_h*dY_h) + sum(Y_c*dY_c).
std::vector<Array> rnn_backward(const RnnParams& p, const RnnInputs& in, const Array& dy, const Array& dyh,
                                const Array& dyc);

}  // namespace onnxtrain::reference
