#pragma once
// Dense, row-major tensors. A Tensor either owns its storage (shared between views)
// or views memory that the caller keeps alive.
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "onnxtrain/errors.h"

namespace onnxtrain {

// Values equal ONNX TensorProto::DataType so conversions are a cast.
enum class DType : int32_t {
  Undefined = 0,
  Float = 1,
  UInt8 = 2,
  Int8 = 3,
  UInt16 = 4,
  Int16 = 5,
  Int32 = 6,
  Int64 = 7,
  String = 8,
  Bool = 9,
  Float16 = 10,
  Double = 11,
  UInt32 = 12,
  UInt64 = 13,
  BFloat16 = 16,
};

using Shape = std::vector<int64_t>;

size_t dtype_size(DType dtype);
std::string dtype_name(DType dtype);
bool is_floating(DType dtype);
int64_t shape_numel(const Shape& shape);
std::string shape_str(const Shape& shape);

template <typename T>
constexpr DType dtype_of();
template <> constexpr DType dtype_of<float>() { return DType::Float; }
template <> constexpr DType dtype_of<double>() { return DType::Double; }
template <> constexpr DType dtype_of<int64_t>() { return DType::Int64; }
template <> constexpr DType dtype_of<int32_t>() { return DType::Int32; }
template <> constexpr DType dtype_of<int16_t>() { return DType::Int16; }
template <> constexpr DType dtype_of<int8_t>() { return DType::Int8; }
template <> constexpr DType dtype_of<uint8_t>() { return DType::UInt8; }
template <> constexpr DType dtype_of<uint16_t>() { return DType::UInt16; }
template <> constexpr DType dtype_of<uint32_t>() { return DType::UInt32; }
template <> constexpr DType dtype_of<uint64_t>() { return DType::UInt64; }
template <> constexpr DType dtype_of<bool>() { return DType::Bool; }

class Tensor {
 public:
  Tensor() = default;
  // Allocates owned, 64-byte aligned, zero-initialised storage.
  Tensor(DType dtype, Shape shape);
  // Wraps memory owned elsewhere; the caller keeps it alive while the tensor is used.
  static Tensor view(DType dtype, Shape shape, void* data);
  // The same, typed and checked: `shape` must hold exactly values.size() elements
  // (ShapeError otherwise). E.g. Tensor::view(std::span(buffer), {batch, 784}).
  template <typename T, size_t Extent>
  static Tensor view(std::span<T, Extent> values, Shape shape);
  // Wraps storage whose lifetime is managed by `owner` (used by allocators).
  static Tensor from_storage(DType dtype, Shape shape, std::shared_ptr<std::byte> owner);

  template <typename T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values);
  template <typename T>
  static Tensor scalar(T value) { return from_vector<T>({}, {value}); }

  bool defined() const { return dtype_ != DType::Undefined; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t dim(size_t i) const { return shape_.at(i); }
  size_t rank() const { return shape_.size(); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T>
  T* data() { check_type(dtype_of<T>()); return static_cast<T*>(data_); }
  template <typename T>
  const T* data() const { check_type(dtype_of<T>()); return static_cast<const T*>(data_); }
  template <typename T>
  std::span<T> span() { return {data<T>(), static_cast<size_t>(numel())}; }
  template <typename T>
  std::span<const T> span() const { return {data<T>(), static_cast<size_t>(numel())}; }
  template <typename T>
  std::vector<T> to_vector() const { auto s = span<T>(); return {s.begin(), s.end()}; }

  // Same storage, new shape with the same element count.
  Tensor reshaped(Shape shape) const;
  // In-place forms for code that runs every training step: they reuse this object's shape
  // capacity, so a steady state allocates nothing. reset() makes the tensor undefined (as
  // Tensor()); assign_storage() points it at `owner` with `dtype` and `shape`;
  // assign_reshaped() makes it `source`'s storage with another shape of the same element count.
  void reset();
  void assign_storage(DType dtype, std::span<const int64_t> shape, std::shared_ptr<std::byte> owner);
  void assign_reshaped(const Tensor& source, std::span<const int64_t> shape);
  // A deep copy with owned storage.
  Tensor clone() const;
  // Values converted to int64 / double regardless of the stored integer or float type.
  std::vector<int64_t> as_int64() const;
  std::vector<double> as_double() const;
  // The same into `out` (resized), reusing its capacity.
  void as_double(std::vector<double>& out) const;

 private:
  void check_type(DType expected) const;

  std::shared_ptr<std::byte> storage_;
  void* data_ = nullptr;
  DType dtype_ = DType::Undefined;
  Shape shape_;
};

template <typename T>
Tensor Tensor::from_vector(Shape shape, const std::vector<T>& values) {
  Tensor t(dtype_of<T>(), std::move(shape));
  if (static_cast<size_t>(t.numel()) != values.size())
    throw ShapeError("Tensor::from_vector: " + std::to_string(values.size()) + " values for shape " + shape_str(t.shape()));
  if constexpr (std::is_same_v<T, bool>) {
    for (size_t i = 0; i < values.size(); ++i) t.data<bool>()[i] = values[i];
  } else {
    std::copy(values.begin(), values.end(), t.data<T>());
  }
  return t;
}

template <typename T, size_t Extent>
Tensor Tensor::view(std::span<T, Extent> values, Shape shape) {
  static_assert(!std::is_const_v<T>, "a Tensor view may be written to: pass mutable memory");
  for (int64_t d : shape)
    if (d < 0) throw ShapeError("Tensor::view: negative dimension in shape " + shape_str(shape));
  if (shape_numel(shape) != static_cast<int64_t>(values.size()))
    throw ShapeError("Tensor::view: " + std::to_string(values.size()) + " values for shape " + shape_str(shape));
  return view(dtype_of<T>(), std::move(shape), values.data());
}

}  // namespace onnxtrain
