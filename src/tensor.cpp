#include "onnxtrain/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>
#include <type_traits>

namespace onnxtrain {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::Float: case DType::Int32: case DType::UInt32: return 4;
    case DType::Double: case DType::Int64: case DType::UInt64: return 8;
    case DType::Int16: case DType::UInt16: case DType::Float16: case DType::BFloat16: return 2;
    case DType::Int8: case DType::UInt8: case DType::Bool: return 1;
    default: throw DataError("unsupported tensor element type " + dtype_name(dtype));
  }
}

std::string dtype_name(DType dtype) {
  switch (dtype) {
    case DType::Undefined: return "undefined";
    case DType::Float: return "float32";
    case DType::UInt8: return "uint8";
    case DType::Int8: return "int8";
    case DType::UInt16: return "uint16";
    case DType::Int16: return "int16";
    case DType::Int32: return "int32";
    case DType::Int64: return "int64";
    case DType::String: return "string";
    case DType::Bool: return "bool";
    case DType::Float16: return "float16";
    case DType::Double: return "float64";
    case DType::UInt32: return "uint32";
    case DType::UInt64: return "uint64";
    case DType::BFloat16: return "bfloat16";
  }
  return "dtype(" + std::to_string(static_cast<int>(dtype)) + ")";
}

bool is_floating(DType dtype) {
  return dtype == DType::Float || dtype == DType::Double || dtype == DType::Float16 ||
         dtype == DType::BFloat16;
}

int64_t shape_numel(const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const Shape& shape) {
  std::ostringstream out;
  out << '[';
  for (size_t i = 0; i < shape.size(); ++i) out << (i ? "," : "") << shape[i];
  out << ']';
  return out.str();
}

Tensor::Tensor(DType dtype, Shape shape) : dtype_(dtype), shape_(std::move(shape)) {
  for (int64_t d : shape_)
    if (d < 0) throw ShapeError("negative dimension in tensor shape " + shape_str(shape_));
  size_t bytes = nbytes();
  size_t padded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, padded);
  if (!p) throw BackendError("out of memory allocating " + std::to_string(bytes) + " bytes");
  std::memset(p, 0, padded);
  storage_ = std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* b) { std::free(b); });
  data_ = p;
}

Tensor Tensor::view(DType dtype, Shape shape, void* data) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  return t;
}

Tensor Tensor::from_storage(DType dtype, Shape shape, std::shared_ptr<std::byte> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = owner.get();
  t.storage_ = std::move(owner);
  return t;
}

Tensor Tensor::reshaped(Shape shape) const {
  if (shape_numel(shape) != numel())
    throw ShapeError("cannot reshape " + shape_str(shape_) + " to " + shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

void Tensor::reset() {
  storage_.reset();
  data_ = nullptr;
  dtype_ = DType::Undefined;
  shape_.clear();
}

void Tensor::assign_storage(DType dtype, std::span<const int64_t> shape, std::shared_ptr<std::byte> owner) {
  dtype_ = dtype;
  shape_.assign(shape.begin(), shape.end());
  data_ = owner.get();
  storage_ = std::move(owner);
}

void Tensor::assign_reshaped(const Tensor& source, std::span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (n != source.numel())
    throw ShapeError("cannot reshape " + shape_str(source.shape_) + " to " + shape_str(Shape(shape.begin(), shape.end())));
  if (this != &source) {
    storage_ = source.storage_;
    data_ = source.data_;
    dtype_ = source.dtype_;
  }
  shape_.assign(shape.begin(), shape.end());
}

Tensor Tensor::clone() const {
  Tensor t(dtype_, shape_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

void Tensor::check_type(DType expected) const {
  if (expected != dtype_)
    throw DataError("tensor holds " + dtype_name(dtype_) + ", accessed as " + dtype_name(expected));
}

namespace {
template <typename Out>
void convert_all(const Tensor& t, std::vector<Out>& out) {
  out.resize(static_cast<size_t>(t.numel()));
  auto copy = [&](const auto* p) {
    using In = std::remove_cv_t<std::remove_pointer_t<decltype(p)>>;
    for (size_t i = 0; i < out.size(); ++i) {
      if constexpr (std::is_floating_point_v<In> && std::is_integral_v<Out>) {
        // Float -> integer casts of NaN or out-of-range values are undefined behaviour.
        if (!(p[i] >= -9.2e18 && p[i] <= 9.2e18))
          throw DataError("value " + std::to_string(p[i]) + " cannot be converted to an integer");
      }
      out[i] = static_cast<Out>(p[i]);
    }
  };
  switch (t.dtype()) {
    case DType::Float: copy(t.data<float>()); break;
    case DType::Double: copy(t.data<double>()); break;
    case DType::Int64: copy(t.data<int64_t>()); break;
    case DType::Int32: copy(t.data<int32_t>()); break;
    case DType::Int16: copy(t.data<int16_t>()); break;
    case DType::Int8: copy(t.data<int8_t>()); break;
    case DType::UInt8: copy(t.data<uint8_t>()); break;
    case DType::UInt16: copy(t.data<uint16_t>()); break;
    case DType::UInt32: copy(t.data<uint32_t>()); break;
    case DType::UInt64: copy(t.data<uint64_t>()); break;
    case DType::Bool: copy(t.data<bool>()); break;
    default: throw DataError("cannot convert " + dtype_name(t.dtype()) + " tensor to numbers");
  }
}

template <typename Out>
std::vector<Out> convert_all(const Tensor& t) {
  std::vector<Out> out;
  convert_all(t, out);
  return out;
}
}  // namespace

std::vector<int64_t> Tensor::as_int64() const { return convert_all<int64_t>(*this); }
std::vector<double> Tensor::as_double() const { return convert_all<double>(*this); }
void Tensor::as_double(std::vector<double>& out) const { convert_all(*this, out); }

}  // namespace onnxtrain
