#pragma once
// Building blocks for the gradient rules of elementwise unary ops (activation.cpp,
// elementwise.cpp): standard ONNX ops only, valid in every opset those forward ops exist in
// (ops from opset 1 get legacy broadcast attributes before opset 7, and a mask product
// where Where, from opset 9, is missing).
#include "ops/gradient.h"

namespace onnxtrain::ops {

// A scalar constant of the forward output's float type (values emitted by the rule have no
// type yet); float16/bfloat16 through a Cast of a float.
Value* typed_scalar(GradientBuilder& b, double value);
// <op>(v, value) for an arithmetic or comparison op (Add, Sub, Mul, Div, Greater, Less).
Value* with_scalar(GradientBuilder& b, const char* op, Value* v, double value);
// Where(cond, a, otherwise), otherwise = 0 when null. Before opset 9 a*m + otherwise*(1-m)
// with m = Cast(cond): equal to Where wherever both branches are finite.
Value* select(GradientBuilder& b, Value* cond, Value* a, Value* otherwise = nullptr);
// dX = dY where cond holds, 0 elsewhere (0 also where dY is inf or NaN, from opset 9).
inline void pass_gradient_where(GradientBuilder& b, Value* cond) { b.GI(0, select(b, cond, b.GO(0))); }

}  // namespace onnxtrain::ops
