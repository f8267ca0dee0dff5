// The machine's limit for training kernels: oneDNN's own best case (format_tag::any, so
// oneDNN picks its blocked layouts and no reorders are timed) for sgemm, the matmul
// primitive and 3x3 convolution forward / backward-data / backward-weights, in f32 and
// bf16, as GFLOP/s. Model throughput in docs/performance.md is quoted as a fraction of this.
//
//   onnxtrain_machine_peak [--threads N] [--seconds S] [--json]
// A benchmark, not a test: it prints numbers and never fails on them.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <oneapi/dnnl/dnnl.hpp>
#include <string>
#include <vector>

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

namespace {

dnnl::engine engine(dnnl::engine::kind::cpu, 0);
dnnl::stream stream(engine);
double g_seconds = 0.5;

// Best time of `run` in seconds over repeats filling about g_seconds (after two warm-ups).
double best_seconds(const std::function<void()>& run) {
  run();
  run();
  double best = 1e300, spent = 0;
  for (int i = 0; i < 3 || spent < g_seconds; ++i) {
    const auto start = std::chrono::steady_clock::now();
    run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, s);
    spent += s;
  }
  return best;
}

memory filled(const memory::desc& md) {
  memory m(md, engine);
  std::memset(m.get_data_handle(), 0, md.get_size());  // zeros: no denormals, layout-agnostic
  return m;
}

struct Result {
  std::string name;
  double gflops;
};

Result time_sgemm(int64_t n) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  const double s = best_seconds(
      [&] { dnnl_sgemm('N', 'N', n, n, n, 1.f, a.data(), n, b.data(), n, 0.f, c.data(), n); });
  return {"sgemm " + std::to_string(n) + "^3 f32", 2.0 * n * n * n / s / 1e9};
}

Result time_matmul(int64_t n, dt type) {
  const memory::desc a({n, n}, type, tag::any), b({n, n}, type, tag::any), c({n, n}, dt::f32, tag::any);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(a, b, c), engine);
  dnnl::matmul prim(pd);
  memory ma = filled(pd.src_desc()), mb = filled(pd.weights_desc()), mc = filled(pd.dst_desc());
  const double s = best_seconds([&] {
    prim.execute(stream, {{DNNL_ARG_SRC, ma}, {DNNL_ARG_WEIGHTS, mb}, {DNNL_ARG_DST, mc}});
    stream.wait();
  });
  return {"matmul " + std::to_string(n) + "^3 " + (type == dt::f32 ? "f32" : "bf16"), 2.0 * n * n * n / s / 1e9};
}

// 3x3 stride-1 pad-1 convolution of an [n, c, hw, hw] batch to c channels.
std::vector<Result> time_conv(int64_t n, int64_t c, int64_t hw, dt type) {
  const memory::dims x{n, c, hw, hw}, w{c, c, 3, 3}, stride{1, 1}, pad{1, 1};
  const memory::desc x_md(x, type, tag::any), w_md(w, type, tag::any), y_md(x, type, tag::any);
  // bf16 training keeps f32 weight gradients (what mixed-precision training accumulates).
  const memory::desc dw_md(w, type == dt::bf16 ? dt::f32 : type, tag::any);
  const auto algo = dnnl::algorithm::convolution_direct;
  dnnl::convolution_forward::primitive_desc fwd_pd(
      dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, algo, x_md, w_md, y_md, stride, pad, pad),
      engine);
  dnnl::convolution_backward_data::primitive_desc bwd_data_pd(
      dnnl::convolution_backward_data::desc(algo, x_md, w_md, y_md, stride, pad, pad), engine, fwd_pd);
  dnnl::convolution_backward_weights::primitive_desc bwd_weights_pd(
      dnnl::convolution_backward_weights::desc(algo, x_md, dw_md, y_md, stride, pad, pad), engine, fwd_pd);
  memory src = filled(fwd_pd.src_desc()), wei = filled(fwd_pd.weights_desc()), dst = filled(fwd_pd.dst_desc());
  memory diff_src = filled(bwd_data_pd.diff_src_desc()), diff_dst = filled(bwd_data_pd.diff_dst_desc());
  memory bwd_wei = filled(bwd_data_pd.weights_desc());
  memory bw_src = filled(bwd_weights_pd.src_desc()), bw_diff_dst = filled(bwd_weights_pd.diff_dst_desc());
  memory diff_wei = filled(bwd_weights_pd.diff_weights_desc());
  dnnl::convolution_forward fwd(fwd_pd);
  dnnl::convolution_backward_data bwd_data(bwd_data_pd);
  dnnl::convolution_backward_weights bwd_weights(bwd_weights_pd);
  const double flops = 2.0 * n * c * hw * hw * c * 9;
  const std::string shape = "conv3x3 " + std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(hw) +
                            "x" + std::to_string(hw) + " " + (type == dt::f32 ? "f32" : "bf16");
  auto run = [&](dnnl::primitive& p, std::unordered_map<int, memory> args) {
    return best_seconds([&] {
      p.execute(stream, args);
      stream.wait();
    });
  };
  return {
      {shape + " fwd", flops / run(fwd, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}}) / 1e9},
      {shape + " bwd-data",
       flops / run(bwd_data, {{DNNL_ARG_DIFF_DST, diff_dst}, {DNNL_ARG_WEIGHTS, bwd_wei}, {DNNL_ARG_DIFF_SRC, diff_src}}) /
           1e9},
      {shape + " bwd-weights",
       flops /
           run(bwd_weights, {{DNNL_ARG_SRC, bw_src}, {DNNL_ARG_DIFF_DST, bw_diff_dst}, {DNNL_ARG_DIFF_WEIGHTS, diff_wei}}) /
           1e9},
  };
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0;
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--seconds") && i + 1 < argc) g_seconds = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--json")) json = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--seconds S] [--json]\n", argv[0]);
      return 2;
    }
  }
  if (threads > 0) omp_set_num_threads(threads);
  std::vector<Result> results;
  try {
    results.push_back(time_sgemm(1024));
    for (dt type : {dt::f32, dt::bf16}) {
      results.push_back(time_matmul(1024, type));
      // A large early-ResNet layer, and a resnet18 layer at the 64x64 inputs the benchmarks use.
      for (const Result& r : time_conv(32, 64, 56, type)) results.push_back(r);
      for (const Result& r : time_conv(32, 128, 8, type)) results.push_back(r);
    }
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "oneDNN: %s\n", e.what());
    return 1;
  }
  std::printf("oneDNN %d.%d.%d, %d thread(s), best of repeats over %.2f s each\n", dnnl_version()->major,
              dnnl_version()->minor, dnnl_version()->patch, omp_get_max_threads(), g_seconds);
  for (const Result& r : results) std::printf("  %-42s %8.1f GFLOP/s\n", r.name.c_str(), r.gflops);
  if (json) {
    std::printf("{\"threads\": %d", omp_get_max_threads());
    for (const Result& r : results) std::printf(", \"%s\": %.2f", r.name.c_str(), r.gflops);
    std::printf("}\n");
  }
  return 0;
}
