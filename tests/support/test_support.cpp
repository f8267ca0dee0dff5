#include "tests/support/test_support.h"

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

#include "graph/tensor_proto.h"

namespace onnxtrain::test {

std::string compare_tensors(const Tensor& actual, const Tensor& expected, double rtol, double atol) {
  std::ostringstream out;
  if (actual.dtype() != expected.dtype()) {
    out << "dtype " << dtype_name(actual.dtype()) << " != expected " << dtype_name(expected.dtype());
    return out.str();
  }
  if (actual.shape() != expected.shape()) {
    out << "shape " << shape_str(actual.shape()) << " != expected " << shape_str(expected.shape());
    return out.str();
  }
  const bool exact = !is_floating(actual.dtype());
  if (actual.dtype() == DType::Float16 || actual.dtype() == DType::BFloat16) {
    // Compare the bit patterns' values through float conversion.
    return std::memcmp(actual.raw(), expected.raw(), actual.nbytes()) == 0 ? "" : "float16 values differ";
  }
  auto a = actual.as_double();
  auto e = expected.as_double();
  int64_t bad = 0, worst = -1;
  double worst_excess = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    bool ok;
    if (std::isnan(e[i]) || std::isnan(a[i])) ok = std::isnan(e[i]) && std::isnan(a[i]);
    else if (std::isinf(e[i]) || std::isinf(a[i])) ok = a[i] == e[i];
    else if (exact) ok = a[i] == e[i];
    else ok = std::abs(a[i] - e[i]) <= atol + rtol * std::abs(e[i]);
    if (!ok) {
      ++bad;
      double excess = std::isfinite(a[i] - e[i]) ? std::abs(a[i] - e[i]) : INFINITY;
      if (worst < 0 || excess > worst_excess) {
        worst = static_cast<int64_t>(i);
        worst_excess = excess;
      }
    }
  }
  if (!bad) return {};
  out << bad << " of " << a.size() << " elements differ (rtol " << rtol << ", atol " << atol
      << "); worst at flat index " << worst << ": got " << a[worst] << ", expected " << e[worst];
  return out.str();
}

double scaled_error(const Tensor& actual, const Tensor& expected) {
  auto av = actual.as_double(), ev = expected.as_double();
  double diff = 0, scale = 0;
  for (size_t i = 0; i < av.size() && i < ev.size(); ++i) {
    diff = std::max(diff, std::abs(av[i] - ev[i]));
    scale = std::max(scale, std::abs(ev[i]));
  }
  return scale > 0 ? diff / scale : diff;
}

Tensor read_tensor_proto_file(const std::string& path, std::string* name) {
  std::ifstream in(path, std::ios::binary);
  onnx::TensorProto proto;
  if (!in || !proto.ParseFromIstream(&in)) throw DataError("cannot read TensorProto file " + path);
  if (name) *name = proto.name();
  return graph::tensor_from_proto(proto);
}

std::string source_dir() {
  const char* dir = std::getenv("ONNXTRAIN_SOURCE_DIR");
  return dir ? dir : ".";
}

std::vector<float> iota_values(size_t n, float start, float step) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = start + step * static_cast<float>(i);
  return v;
}

std::vector<double> random_values(size_t n, double lo, double hi, unsigned seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (auto& x : v) x = dist(gen);
  return v;
}

Tensor as_float(const Shape& shape, const std::vector<double>& v) {
  return Tensor::from_vector<float>(shape, std::vector<float>(v.begin(), v.end()));
}

void expect_close(const Tensor& actual, const Tensor& expected, double rtol, double atol) {
  std::string report = compare_tensors(actual, expected, rtol, atol);
  EXPECT_TRUE(report.empty()) << report;
}

const char* const kLinearModel = R"(
  <ir_version: 8, opset_import: ["" : 17]>
  g (float[N, 4] X) => (float[N, 3] Y)
  <float[4, 3] W = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2}, float[3] b = {0.1, 0.2, 0.3}>
  { H = MatMul(X, W) Y = Add(H, b) }
)";

std::map<std::string, Tensor> linear_batch() {
  return {{"X", Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, -1, 0, 1, 2})},
          {"label", Tensor::from_vector<float>({2, 3}, {1, 0, 1, 0, 1, 0})}};
}

}  // namespace onnxtrain::test
