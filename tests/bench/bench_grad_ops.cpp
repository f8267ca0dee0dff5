// Fused oneDNN eltwise backward vs the standard-ONNX-op chain for the same activation
// gradient, on one tensor: median time of interleaved runs and the bytes each allocates.
// The fused side runs oneDNN's eltwise_backward primitive directly (what an ai.onnxtrain
// *Grad kernel on it costs); the chain runs through the executor, so it pays for our own
// kernels and their temporaries exactly as a training step would. docs/gradients.md holds
// the results and which gradient rule uses which form.
//
//   onnxtrain_bench_grad_ops [--shape 32,64,56,56] [--threads 2] [--repeat 51] [--op Relu]
//
// A developer micro-benchmark of internal kernels, so it includes internal headers (tools
// otherwise use include/onnxtrain only).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "graph/importer.h"
#include "onnxtrain/onnxtrain.h"
#include "ops/dnnl_utils.h"
#include "src/executor.h"

using namespace onnxtrain;
using dnnl::algorithm;

namespace {

struct Candidate {
  const char* op;
  algorithm fused;   // the oneDNN backward algorithm (use_dst forms read Y, the others X)
  float alpha, beta;
  double lo, hi;     // range of X
  const char* chain; // ONNX text nodes from X, Y, dY (and constants) to dX
};

// Constants the chains share; each chain uses the ones it needs.
constexpr const char* kConstants =
    "z = Constant<value = float {0}>() one = Constant<value = float {1}>() two = Constant<value = float {2}>() "
    "half = Constant<value = float {0.5}>() third = Constant<value = float {0.33333334}>() "
    "p3 = Constant<value = float {3}>() m3 = Constant<value = float {-3}>() "
    "a01 = Constant<value = float {0.01}>() lo = Constant<value = float {-1}>() ";

const Candidate kCandidates[] = {
    {"Relu", algorithm::eltwise_relu_use_dst_for_bwd, 0.f, 0.f, -3, 3, "m = Greater(Y, z) dX = Where(m, dY, z)"},
    {"LeakyRelu", algorithm::eltwise_relu_use_dst_for_bwd, 0.01f, 0.f, -3, 3,
     "m = Greater(Y, z) s = Mul(dY, a01) dX = Where(m, dY, s)"},
    {"Elu", algorithm::eltwise_elu_use_dst_for_bwd, 1.f, 0.f, -3, 3,
     "m = Greater(Y, z) t = Add(Y, one) s = Mul(dY, t) dX = Where(m, dY, s)"},
    {"Sigmoid", algorithm::eltwise_logistic_use_dst_for_bwd, 0.f, 0.f, -3, 3,
     "o = Sub(one, Y) t = Mul(Y, o) dX = Mul(dY, t)"},
    {"Tanh", algorithm::eltwise_tanh_use_dst_for_bwd, 0.f, 0.f, -3, 3, "s = Mul(Y, Y) o = Sub(one, s) dX = Mul(dY, o)"},
    {"Softplus", algorithm::eltwise_soft_relu, 0.f, 0.f, -3, 3, "s = Sigmoid(X) dX = Mul(dY, s)"},
    {"HardSwish", algorithm::eltwise_hardswish, 0.f, 0.f, -5, 5,
     "t = Mul(X, third) u = Add(t, half) l = Less(X, p3) a = Where(l, u, one) g = Greater(X, m3) "
     "d = Where(g, a, z) dX = Mul(dY, d)"},
    {"Exp", algorithm::eltwise_exp_use_dst_for_bwd, 0.f, 0.f, -3, 3, "dX = Mul(dY, Y)"},
    {"Log", algorithm::eltwise_log, 0.f, 0.f, 0.1, 3, "dX = Div(dY, X)"},
    {"Sqrt", algorithm::eltwise_sqrt_use_dst_for_bwd, 0.f, 0.f, 0.1, 3, "t = Mul(Y, two) dX = Div(dY, t)"},
    {"Abs", algorithm::eltwise_abs, 0.f, 0.f, -3, 3, "s = Sign(X) dX = Mul(dY, s)"},
    {"Clip", algorithm::eltwise_clip_v2_use_dst_for_bwd, -1.f, 1.f, -3, 3,
     "a = Greater(Y, lo) b = Less(Y, one) m = And(a, b) dX = Where(m, dY, z)"},
};

// The *_use_dst_for_bwd algorithms read the forward output Y, the others X.
bool reads_output(algorithm a) {
  for (algorithm d : {algorithm::eltwise_relu_use_dst_for_bwd, algorithm::eltwise_elu_use_dst_for_bwd,
                      algorithm::eltwise_logistic_use_dst_for_bwd, algorithm::eltwise_tanh_use_dst_for_bwd,
                      algorithm::eltwise_exp_use_dst_for_bwd, algorithm::eltwise_sqrt_use_dst_for_bwd,
                      algorithm::eltwise_clip_v2_use_dst_for_bwd})
    if (a == d) return true;
  return false;
}

Tensor random_tensor(const Shape& shape, double lo, double hi, unsigned seed) {
  Tensor t(DType::Float, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(static_cast<float>(lo), static_cast<float>(hi));
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(rng);
  return t;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double time_ms(F f) {
  auto start = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

void run(const Candidate& c, const Shape& shape, int repeat) {
  const auto md = ops::plain_desc(shape, DType::Float);
  Tensor x = random_tensor(shape, c.lo, c.hi, 1), dy = random_tensor(shape, -1, 1, 2);
  Tensor y(DType::Float, shape), dx(DType::Float, shape);
  dnnl::eltwise_forward::primitive_desc fwd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_training, c.fused, md, c.alpha, c.beta), ops::cpu_engine());
  ops::execute(dnnl::eltwise_forward(fwd), {{DNNL_ARG_SRC, ops::bind(md, x)}, {DNNL_ARG_DST, ops::bind(md, y)}});
  dnnl::eltwise_backward bwd(dnnl::eltwise_backward::primitive_desc(
      dnnl::eltwise_backward::desc(c.fused, md, md, c.alpha, c.beta), ops::cpu_engine(), fwd));
  const bool from_y = reads_output(c.fused);
  auto fused = [&] {
    ops::execute(bwd, {{DNNL_ARG_DIFF_DST, ops::bind(md, dy)},
                       {from_y ? DNNL_ARG_DST : DNNL_ARG_SRC, ops::bind(md, from_y ? y : x)},
                       {DNNL_ARG_DIFF_SRC, ops::bind(md, dx)}});
  };

  std::string dims;
  for (size_t i = 0; i < shape.size(); ++i) dims += (i ? "," : "") + std::to_string(shape[i]);
  const std::string t = "float[" + dims + "]";
  onnx::ModelProto proto;
  graph::load_model_text("<ir_version: 8, opset_import: [\"\" : 17]> g (" + t + " X, " + t + " Y, " + t + " dY) => (" +
                             t + " dX) { " + kConstants + c.chain + " }",
                         proto);
  auto g = graph::import_graph(proto, {});
  Executor ex(*g, {"dX"});
  auto chain = [&] { ex.run({{"X", x}, {"Y", y}, {"dY", dy}}); };

  fused();
  chain();
  std::vector<double> fused_ms, chain_ms;
  for (int i = 0; i < repeat; ++i) {  // interleaved, so load from other processes hits both alike
    fused_ms.push_back(time_ms(fused));
    chain_ms.push_back(time_ms(chain));
  }
  const double f = median(fused_ms), ch = median(chain_ms);
  std::printf("| %s | %.2f | %.2f | %.2fx | %.1f | %.1f |\n", c.op, f, ch, ch / f, dx.nbytes() / 1048576.0,
              ex.pool().peak_bytes_in_use() / 1048576.0);
}

}  // namespace

int main(int argc, char** argv) {
  Shape shape = {32, 64, 56, 56};
  int threads = 2, repeat = 51;
  std::string only;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeat")) repeat = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--op")) only = argv[i + 1];
    else if (!std::strcmp(argv[i], "--shape")) {
      shape.clear();
      for (const char* p = argv[i + 1]; *p;) {
        char* end;
        shape.push_back(std::strtoll(p, &end, 10));
        p = *end ? end + 1 : end;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--shape 32,64,56,56] [--threads 2] [--repeat 51] [--op Relu]\n", argv[0]);
      return 2;
    }
  }
  try {
    set_num_threads(threads);
    std::printf("| op | fused oneDNN ms | standard-op chain ms | chain / fused | fused MiB | chain MiB |\n");
    std::printf("|---|---|---|---|---|---|\n");
    for (const auto& c : kCandidates)
      if (only.empty() || only == c.op) run(c, shape, repeat);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
