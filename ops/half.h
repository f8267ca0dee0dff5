#pragma once
// 16-bit floats (float16, bfloat16): conversions with round-to-nearest-even, and the
// storage types the own-loop kernels template over (Tensor::data<T> has no C++ type for them).
#include <cstdint>
#include <type_traits>

#include "onnxtrain/tensor.h"

namespace onnxtrain::ops {

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bfloat16_to_float(uint16_t h);
uint16_t float_to_bfloat16(float f);

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T>
constexpr bool is_half_v = std::is_same_v<T, Half> || std::is_same_v<T, BFloat16>;
template <typename T>
constexpr bool is_float_v = std::is_floating_point_v<T> || is_half_v<T>;
// The type arithmetic happens in.
template <typename T>
using compute_t = std::conditional_t<is_half_v<T>, float, T>;

template <typename T>
compute_t<T> load(T v) {
  if constexpr (std::is_same_v<T, Half>) return half_to_float(v.bits);
  else if constexpr (std::is_same_v<T, BFloat16>) return bfloat16_to_float(v.bits);
  else return v;
}

template <typename R, typename V>
R store(V v) {
  if constexpr (std::is_same_v<R, Half>) return Half{float_to_half(static_cast<float>(v))};
  else if constexpr (std::is_same_v<R, BFloat16>) return BFloat16{float_to_bfloat16(static_cast<float>(v))};
  else return static_cast<R>(v);
}

template <typename T>
constexpr DType dtype_for() {
  if constexpr (std::is_same_v<T, Half>) return DType::Float16;
  else if constexpr (std::is_same_v<T, BFloat16>) return DType::BFloat16;
  else return dtype_of<T>();
}

template <typename T>
const T* cdata(const Tensor& t) {
  if constexpr (is_half_v<T>) return static_cast<const T*>(t.raw());
  else return t.data<T>();
}
template <typename T>
T* mdata(Tensor& t) {
  if constexpr (is_half_v<T>) return static_cast<T*>(t.raw());
  else return t.data<T>();
}

}  // namespace onnxtrain::ops
