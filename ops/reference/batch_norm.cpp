#include "ops/reference/batch_norm.h"

#include <cmath>

namespace onnxtrain::reference {
namespace {

int64_t channel_of(const Array& x, int64_t i) {
  const int64_t spatial = x.numel() / (x.shape[0] * x.shape[1]);
  return (i / spatial) % x.shape[1];
}

}  // namespace

void batch_moments(const Array& x, Array& mean, Array& var) {
  const int64_t c = x.shape[1];
  const double count = static_cast<double>(x.numel() / c);
  mean = Array({c});
  var = Array({c});
  for (int64_t i = 0; i < x.numel(); ++i) mean[channel_of(x, i)] += x[i] / count;
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double d = x[i] - mean[channel_of(x, i)];
    var[channel_of(x, i)] += d * d / count;
  }
}

BatchNormResult batch_norm(const Array& x, const Array& scale, const Array& bias, const Array& mean, const Array& var,
                           double epsilon, double momentum, bool training) {
  BatchNormResult r;
  const Array* m = &mean;
  const Array* v = &var;
  if (training) {
    batch_moments(x, r.batch_mean, r.batch_var);
    m = &r.batch_mean;
    v = &r.batch_var;
    r.running_mean = Array(mean.shape);
    r.running_var = Array(var.shape);
    for (int64_t c = 0; c < mean.numel(); ++c) {
      r.running_mean[c] = momentum * mean[c] + (1 - momentum) * r.batch_mean[c];
      r.running_var[c] = momentum * var[c] + (1 - momentum) * r.batch_var[c];
    }
  }
  r.y = Array(x.shape);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = channel_of(x, i);
    r.y[i] = scale[c] * (x[i] - (*m)[c]) / std::sqrt((*v)[c] + epsilon) + bias[c];
  }
  return r;
}

BatchNormGrads batch_norm_backward(const Array& dy, const Array& x, const Array& scale, const Array& mean,
                                   const Array& var, double epsilon, bool training) {
  const int64_t channels = x.shape[1];
  const double count = static_cast<double>(x.numel() / channels);
  BatchNormGrads g{Array(x.shape), Array({channels}), Array({channels})};
  auto xhat = [&](int64_t i) {
    const int64_t c = channel_of(x, i);
    return (x[i] - mean[c]) / std::sqrt(var[c] + epsilon);
  };
  for (int64_t i = 0; i < x.numel(); ++i) {
    g.dbias[channel_of(x, i)] += dy[i];
    g.dscale[channel_of(x, i)] += dy[i] * xhat(i);
  }
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t c = channel_of(x, i);
    const double a = scale[c] / std::sqrt(var[c] + epsilon);
    // d/dx of the batch statistics: the mean of dy and of dy * xhat over the channel.
    g.dx[i] = training ? a * (dy[i] - g.dbias[c] / count - xhat(i) * g.dscale[c] / count) : a * dy[i];
  }
  return g;
}

}  // namespace onnxtrain::reference
