#pragma once
// Helpers shared by the test suites.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "onnxtrain/errors.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain::test {

// numpy.testing.assert_allclose semantics: |a - e| <= atol + rtol * |e|, NaNs must match.
// Returns an empty string when close, otherwise a readable report of the worst elements.
std::string compare_tensors(const Tensor& actual, const Tensor& expected, double rtol = 1e-3,
                            double atol = 1e-7);

// max |a - e| / max |e|: the error relative to the tensor's scale (elementwise relative
// error is meaningless for entries near zero). Used for gradients and trained parameters.
double scaled_error(const Tensor& actual, const Tensor& expected);

// Reads a TensorProto file (ONNX backend test data).
Tensor read_tensor_proto_file(const std::string& path, std::string* name = nullptr);

// Root of the source tree (for models/ and tests/ data).
std::string source_dir();

// The message of the exception E that `fn` throws; any other outcome fails the test.
template <typename E = DataError, typename Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected another exception type, got: " << e.what();
    return {};
  }
  ADD_FAILURE() << "expected an exception, nothing was thrown";
  return {};
}

// v[i] = start + step * i.
std::vector<float> iota_values(size_t n, float start = 0.f, float step = 1.f);

// n values uniform in [lo, hi) from std::mt19937(seed).
std::vector<double> random_values(size_t n, double lo, double hi, unsigned seed);

// A tensor of element type T holding `v` (converted).
template <typename T>
Tensor to_tensor(Shape shape, const std::vector<float>& v) {
  return Tensor::from_vector<T>(std::move(shape), std::vector<T>(v.begin(), v.end()));
}
// A float tensor holding `v` (rounded).
Tensor as_float(const Shape& shape, const std::vector<double>& v);

// EXPECT on compare_tensors with these tolerances.
void expect_close(const Tensor& actual, const Tensor& expected, double rtol = 1e-4, double atol = 1e-5);

// Expects `f` to throw an onnxtrain::Error whose message contains `fragment`.
template <typename F>
void expect_error(F f, const std::string& fragment) {
  const std::string message = error_of<Error>(f);
  EXPECT_NE(message.find(fragment), std::string::npos) << "message: " << message;
}

// A 4 -> 3 linear model (Y = X W + b, W and b trainable) with a symbolic batch, and a batch
// of two rows with mse targets for it: the smallest session the API tests need.
extern const char* const kLinearModel;
std::map<std::string, Tensor> linear_batch();

}  // namespace onnxtrain::test
