// Pooling: MaxPool and AveragePool on oneDNN pooling_v2 (float32, int8, uint8; built at plan
// time) where its semantics match ONNX's; own loops for MaxPool's Indices output,
// MaxPoolGrad, LpPool, the global pools, double and the cases oneDNN cannot express.
// MaxUnpool and RoiAlign are in unpool_roi_align.cpp; shared helpers: pool_common.h.
#include "ops/pool_common.h"

#include <cstring>

namespace onnxtrain::ops {

namespace pool_impl {

// Reads the pooling attributes; with `windows` false (MaxUnpool) only kernel, strides and
// explicit pads are read and no output size is derived.
PoolGeometry pool_geometry(const Node& node, const Shape& x, bool windows) {
  if (x.size() < 3 || x.size() > 2 + kMaxSpatial)
    fail_shape(node, "input must have 1 to 3 spatial dims ([N, C, d1, ...]), got " + shape_str(x));
  PoolGeometry g;
  g.nsp = static_cast<int>(x.size()) - 2;
  const size_t nsp = static_cast<size_t>(g.nsp);
  g.n = x[0];
  g.c = x[1];
  auto ints = [&](const char* name, int64_t fallback, size_t count, int64_t min) {
    auto v = node.attr_ints(name, std::vector<int64_t>(count, fallback));
    if (v.size() != count)
      fail(node, std::string(name) + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(count));
    for (int64_t e : v)
      if (e < min) fail(node, std::string(name) + " must be >= " + std::to_string(min) + ", got " + std::to_string(e));
    return v;
  };
  if (!node.has_attr("kernel_shape")) fail(node, "attribute kernel_shape is required");
  const auto kernel = ints("kernel_shape", 1, nsp, 1);
  const auto strides = ints("strides", 1, nsp, 1);
  const auto dilations = ints("dilations", 1, nsp, 1);
  const auto pads = ints("pads", 0, 2 * nsp, 0);
  const bool ceil_mode = node.attr_int("ceil_mode", 0) != 0;
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    fail(node, "unknown auto_pad '" + auto_pad + "'");
  const int off = kMaxSpatial - g.nsp;
  for (int i = off; i < kMaxSpatial; ++i) {
    const size_t j = static_cast<size_t>(i - off);
    g.in[i] = x[2 + j];
    g.k[i] = kernel[j];
    g.s[i] = strides[j];
    g.d[i] = dilations[j];
    if (!windows) {
      g.pb[i] = pads[j];
      g.pe[i] = pads[j + nsp];
      continue;
    }
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      g.out[i] = (g.in[i] + g.s[i] - 1) / g.s[i];
      const int64_t total = std::max<int64_t>(0, (g.out[i] - 1) * g.s[i] + g.ext(i) - g.in[i]);
      g.pb[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pe[i] = total - g.pb[i];
    } else {
      if (auto_pad == "NOTSET") {
        g.pb[i] = pads[j];
        g.pe[i] = pads[j + nsp];
      }
      const int64_t span = g.in[i] + g.pb[i] + g.pe[i] - g.ext(i);
      if (span < 0) fail_shape(node, "the kernel is larger than the padded input " + shape_str(x));
      g.out[i] = (ceil_mode ? (span + g.s[i] - 1) / g.s[i] : span / g.s[i]) + 1;
      // A ceil_mode window must start inside the input or the left padding (PyTorch's rule,
      // and ONNX's since the reference implementation was fixed).
      if (ceil_mode && (g.out[i] - 1) * g.s[i] >= g.in[i] + g.pb[i]) --g.out[i];
    }
    g.dnnl_pe[i] = std::max(g.pe[i], (g.out[i] - 1) * g.s[i] + g.ext(i) - g.in[i] - g.pb[i]);
  }
  return g;
}

// Emits `type` (ai.onnxtrain) on (dY, inputs...) with the forward's attributes as dX.
void pool_grad_rule(GradientBuilder& b, const char* type, std::vector<Value*> extra) {
  std::vector<Value*> inputs{b.GO(0)};
  inputs.insert(inputs.end(), extra.begin(), extra.end());
  b.GI(0, b.op(type, inputs, b.node().attributes, graph::kTrainingDomain));
}

}  // namespace pool_impl

namespace {

using namespace pool_impl;

enum class PoolKind { Max, AvgExcludePad, AvgIncludePad, Lp };

// One pass over every window. Max also records the flat input index of the maximum
// (row-major, or column-major over the spatial dims for storage_order 1).
template <typename T, PoolKind K>
void pool_loop(const PoolGeometry& g, const T* x, T* y, int64_t* indices, bool column_major, double p) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
  const int64_t isz = g.in_size(), osz = g.out_size();
  Dims3 col{0, 0, 0};  // column-major strides of the spatial dims
  int64_t stride = 1;
  for (int i = kMaxSpatial - g.nsp; i < kMaxSpatial; ++i) {
    col[i] = stride;
    stride *= g.in[i];
  }
  parallel_for(g.n * g.c, [&](int64_t nc) {
    const T* xi = x + nc * isz;
    T* yo = y + nc * osz;
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
          const int64_t st0 = o0 * g.s[0] - g.pb[0], st1 = o1 * g.s[1] - g.pb[1], st2 = o2 * g.s[2] - g.pb[2];
          Acc acc = K == PoolKind::Max ? static_cast<Acc>(std::numeric_limits<T>::lowest()) : Acc(0);
          int64_t best = -1, count = 0, padded_count = 0;
          for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
            const int64_t i0 = st0 + k0 * g.d[0];
            for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
              const int64_t i1 = st1 + k1 * g.d[1];
              for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                const int64_t i2 = st2 + k2 * g.d[2];
                // Points beyond the end padding (ceil_mode's last window) count for nobody.
                if (i0 < g.in[0] + g.pe[0] && i1 < g.in[1] + g.pe[1] && i2 < g.in[2] + g.pe[2]) ++padded_count;
                if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2]) continue;
                const int64_t at = (i0 * g.in[1] + i1) * g.in[2] + i2;
                const Acc v = static_cast<Acc>(xi[at]);
                if constexpr (K == PoolKind::Max) {
                  if (v > acc || best < 0) {
                    acc = v;
                    best = column_major ? i0 * col[0] + i1 * col[1] + i2 * col[2] : at;
                  }
                } else if constexpr (K == PoolKind::Lp) {
                  acc += std::pow(std::abs(static_cast<double>(v)), p);
                } else {
                  acc += v;
                }
                ++count;
              }
            }
          }
          const int64_t o = (o0 * g.out[1] + o1) * g.out[2] + o2;
          if constexpr (K == PoolKind::Max) {
            yo[o] = static_cast<T>(acc);
            if (indices) indices[nc * osz + o] = best < 0 ? -1 : nc * isz + best;
          } else if constexpr (K == PoolKind::Lp) {
            yo[o] = static_cast<T>(std::pow(static_cast<double>(acc), 1.0 / p));
          } else {
            const int64_t divisor = K == PoolKind::AvgIncludePad ? padded_count : count;
            yo[o] = divisor ? static_cast<T>(acc / static_cast<Acc>(divisor)) : T(0);
          }
        }
  }, 1);
}

// oneDNN pooling over our row-major layout (its plain-layout kernels avoid reorders that
// would cost more than the pooling itself).
class DnnlPoolKernel final : public Kernel {
 public:
  DnnlPoolKernel(const PoolGeometry& g, dnnl::algorithm alg, DType dtype) : dtype_(dtype), y_shape_(g.out_shape()) {
    src_md_ = plain_desc(g.in_shape(), dtype);
    dst_md_ = plain_desc(y_shape_, dtype);
    dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, alg, src_md_, dst_md_, g.dnnl(g.s),
                                        g.dnnl(g.k), g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(g.dnnl_pe));
    pd_ = dnnl::pooling_v2_forward::primitive_desc(desc, arena_scratchpad(), cpu_engine());
    primitive_ = dnnl::pooling_v2_forward(pd_);
  }
  void run(KernelContext& ctx) override {
    Tensor& y = ctx.output(0, dtype_, y_shape_);
    execute(primitive_, {{DNNL_ARG_SRC, bind(src_md_, ctx.input(0))}, {DNNL_ARG_DST, bind(dst_md_, y)}});
  }

 private:
  DType dtype_;
  Shape y_shape_;
  dnnl::memory::desc src_md_, dst_md_;
  dnnl::pooling_v2_forward::primitive_desc pd_;
  dnnl::pooling_v2_forward primitive_;
};

std::unique_ptr<Kernel> try_dnnl_pool(const PoolGeometry& g, dnnl::algorithm alg, DType dtype) {
  if (g.n * g.c * g.out_size() == 0) return nullptr;
  if (dtype != DType::Float && dtype != DType::Int8 && dtype != DType::UInt8) return nullptr;
  try {
    return std::make_unique<DnnlPoolKernel>(g, alg, dtype);
  } catch (const dnnl::error&) {
    return nullptr;  // a geometry oneDNN rejects (e.g. pads beyond the kernel): own loop
  }
}

template <PoolKind K>
std::unique_ptr<Kernel> own_pool(const PoolGeometry& g, bool column_major = false, double p = 0) {
  return make_function_kernel([g, column_major, p](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), g.out_shape());
    int64_t* indices = nullptr;
    if constexpr (K == PoolKind::Max) {
      if (ctx.num_outputs() > 1 && ctx.wants_output(1)) indices = ctx.output(1, DType::Int64, g.out_shape()).data<int64_t>();
    }
    dispatch_types<float, double, int8_t, uint8_t>(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      pool_loop<T, K>(g, x.data<T>(), y.data<T>(), indices, column_major, p);
    });
  });
}

std::unique_ptr<Kernel> make_max_pool(const Node& node, const std::vector<InputInfo>& in) {
  const PoolGeometry g = pool_geometry(node, in[0].shape);
  const int64_t order = node.attr_int("storage_order", 0);
  if (order != 0 && order != 1) fail(node, "storage_order must be 0 or 1");
  // The Indices output follows ONNX's flattening convention, which oneDNN's workspace does not.
  if (!node.has_output(1))
    if (auto k = try_dnnl_pool(g, dnnl::algorithm::pooling_max, in[0].dtype)) return k;
  return own_pool<PoolKind::Max>(g, order == 1);
}

std::unique_ptr<Kernel> make_average_pool(const Node& node, const std::vector<InputInfo>& in) {
  const PoolGeometry g = pool_geometry(node, in[0].shape);
  const bool include_pad = node.attr_int("count_include_pad", 0) != 0;
  if (!is_floating(in[0].dtype)) fail(node, "does not support element type " + dtype_name(in[0].dtype));
  // oneDNN divides by the full kernel size when including padding, ONNX by the part of the
  // window inside the padded input: they differ only for ceil_mode's extended windows.
  if (!include_pad || !g.ceil_extended()) {
    auto alg = include_pad ? dnnl::algorithm::pooling_avg_include_padding : dnnl::algorithm::pooling_avg_exclude_padding;
    if (auto k = try_dnnl_pool(g, alg, in[0].dtype)) return k;
  }
  return include_pad ? own_pool<PoolKind::AvgIncludePad>(g) : own_pool<PoolKind::AvgExcludePad>(g);
}

std::unique_ptr<Kernel> make_lp_pool(const Node& node, const std::vector<InputInfo>& in) {
  const PoolGeometry g = pool_geometry(node, in[0].shape);
  const double p = node.opset < 2 ? node.attr_float("p", 2.f) : static_cast<double>(node.attr_int("p", 2));
  if (!(p > 0)) fail(node, "p must be positive");
  if (!is_floating(in[0].dtype)) fail(node, "does not support element type " + dtype_name(in[0].dtype));
  return own_pool<PoolKind::Lp>(g, false, p);
}

// GlobalAveragePool / GlobalMaxPool: one contiguous reduction per (n, c) row.
template <bool Max>
std::unique_ptr<Kernel> make_global_pool(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  if (x.size() < 3) fail_shape(node, "input must be [N, C, d1, ...], got " + shape_str(x));
  Shape y(x.size(), 1);
  y[0] = x[0];
  y[1] = x[1];
  const int64_t rows = x[0] * x[1], len = shape_numel(x) / std::max<int64_t>(rows, 1);
  return make_function_kernel([y, rows, len](KernelContext& ctx) {
    const Tensor& t = ctx.input(0);
    Tensor& out = ctx.output(0, t.dtype(), y);
    dispatch_float(t.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* src = t.data<T>();
      T* dst = out.data<T>();
      parallel_for(rows, [&](int64_t r) {
        const T* row = src + r * len;
        if constexpr (Max) {
          T m = len ? row[0] : T(0);
          for (int64_t i = 1; i < len; ++i) m = row[i] > m ? row[i] : m;
          dst[r] = m;
        } else {
          double sum = 0;
          for (int64_t i = 0; i < len; ++i) sum += row[i];
          dst[r] = len ? static_cast<T>(sum / static_cast<double>(len)) : T(0);
        }
      }, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)));
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Gradients. The ai.onnxtrain *Grad ops carry the forward node's attributes and rebuild its
// geometry from X's shape, so they take exactly the forward's windows (pads, dilations,
// ceil_mode and its window rule).

// dX of one pooling window pass, mirroring pool_loop window by window (MaxPoolGradKernel
// below has Max): the averages spread dY / divisor over the window's input points, Lp
// scales by d(sum |x|^p)^(1/p) / dx = sign(x) |x|^(p-1) y^(1-p).
template <typename T, PoolKind K>
void pool_backward_loop(const PoolGeometry& g, const T* x, const T* y, const T* dy, T* dx, double p) {
  const int64_t isz = g.in_size(), osz = g.out_size();
  parallel_for(g.n * g.c, [&](int64_t nc) {
    const T* xi = x ? x + nc * isz : nullptr;
    const T* dyo = dy + nc * osz;
    T* dxi = dx + nc * isz;
    std::fill_n(dxi, isz, T(0));
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
          const int64_t o = (o0 * g.out[1] + o1) * g.out[2] + o2;
          const int64_t st0 = o0 * g.s[0] - g.pb[0], st1 = o1 * g.s[1] - g.pb[1], st2 = o2 * g.s[2] - g.pb[2];
          // Visits the window's points inside the input (f(at)) and counts those inside the
          // padded input (for count_include_pad).
          auto window = [&](auto&& f) {
            int64_t padded = 0;
            for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
              const int64_t i0 = st0 + k0 * g.d[0];
              for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
                const int64_t i1 = st1 + k1 * g.d[1];
                for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                  const int64_t i2 = st2 + k2 * g.d[2];
                  if (i0 < g.in[0] + g.pe[0] && i1 < g.in[1] + g.pe[1] && i2 < g.in[2] + g.pe[2]) ++padded;
                  if (i0 < 0 || i0 >= g.in[0] || i1 < 0 || i1 >= g.in[1] || i2 < 0 || i2 >= g.in[2]) continue;
                  f((i0 * g.in[1] + i1) * g.in[2] + i2);
                }
              }
            }
            return padded;
          };
          const T d = dyo[o];
          if constexpr (K == PoolKind::Lp) {
            const double yv = static_cast<double>(y[nc * osz + o]);
            if (yv == 0) continue;  // every |x| is 0: the subgradient 0
            const double scale = static_cast<double>(d) * std::pow(yv, 1.0 - p);
            window([&](int64_t at) {
              const double v = static_cast<double>(xi[at]);
              if (v != 0) dxi[at] += static_cast<T>(scale * std::pow(std::abs(v), p - 1.0) * (v > 0 ? 1.0 : -1.0));
            });
          } else {
            int64_t count = 0;
            const int64_t padded = window([&](int64_t) { ++count; });
            const int64_t divisor = K == PoolKind::AvgIncludePad ? padded : count;
            if (!divisor) continue;
            const T share = static_cast<T>(static_cast<double>(d) / static_cast<double>(divisor));
            window([&](int64_t at) { dxi[at] += share; });
          }
        }
  }, 1);
}

// oneDNN average pooling backward (float32).
class DnnlPoolGradKernel final : public Kernel {
 public:
  DnnlPoolGradKernel(const PoolGeometry& g, dnnl::algorithm alg) : x_shape_(g.in_shape()) {
    src_md_ = plain_desc(g.in_shape(), DType::Float);
    dst_md_ = plain_desc(g.out_shape(), DType::Float);
    dnnl::pooling_v2_forward::desc fwd(dnnl::prop_kind::forward_training, alg, src_md_, dst_md_, g.dnnl(g.s),
                                       g.dnnl(g.k), g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(g.dnnl_pe));
    dnnl::pooling_v2_forward::primitive_desc fwd_pd(fwd, arena_scratchpad(), cpu_engine());
    dnnl::pooling_v2_backward::desc bwd(alg, src_md_, dst_md_, g.dnnl(g.s), g.dnnl(g.k), g.dnnl(g.d, -1),
                                        g.dnnl(g.pb), g.dnnl(g.dnnl_pe));
    dnnl::pooling_v2_backward::primitive_desc bwd_pd(bwd, arena_scratchpad(), cpu_engine(), fwd_pd);
    backward_ = dnnl::pooling_v2_backward(bwd_pd);
  }
  void run(KernelContext& ctx) override {
    Tensor& dx = ctx.output(0, DType::Float, x_shape_);
    execute(backward_, {{DNNL_ARG_DIFF_DST, bind(dst_md_, ctx.input(0))}, {DNNL_ARG_DIFF_SRC, bind(src_md_, dx)}});
  }

 private:
  Shape x_shape_;
  dnnl::memory::desc src_md_, dst_md_;
  dnnl::primitive backward_;
};

// MaxPoolGrad (dY, X) -> dX, one pass: each window's first maximum found again in X (as the
// forward picks it) takes the window's dY. The window bounds clipped to the input are
// tabulated per output coordinate at plan time, so the inner loops run without bounds tests.
// Finding the maximum again reads the X that is kept anyway, where a workspace from the
// forward would be one more tensor held from forward to backward. oneDNN's plain-layout
// backward, with the forward it reruns for its workspace, took 5.2 ms where this takes 3.3
// (k3 s2 over 32x64x31x31, one thread), and this one is parallel over planes.
class MaxPoolGradKernel final : public Kernel {
 public:
  explicit MaxPoolGradKernel(const PoolGeometry& g) : g_(g), x_shape_(g.in_shape()) {
    for (int i = 0; i < kMaxSpatial; ++i) {
      first_[i].resize(static_cast<size_t>(g.out[i]));
      count_[i].resize(static_cast<size_t>(g.out[i]));
      for (int64_t o = 0; o < g.out[i]; ++o) {
        const int64_t start = o * g.s[i] - g.pb[i];
        const int64_t k_lo = start < 0 ? (-start + g.d[i] - 1) / g.d[i] : 0;
        const int64_t k_hi = start <= g.in[i] - 1 ? std::min(g.k[i], (g.in[i] - 1 - start) / g.d[i] + 1) : 0;
        // A window wholly in the padding (count 0) is never read.
        first_[i][static_cast<size_t>(o)] = k_hi > k_lo ? start + k_lo * g.d[i] : 0;
        count_[i][static_cast<size_t>(o)] = std::max<int64_t>(0, k_hi - k_lo);
      }
    }
    if ((g.s[2] == 1 || g.s[2] == 2) && g.in_size() + 8 <= std::numeric_limits<int32_t>::max()) vector_stride_ = g.s[2];
  }
  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    Tensor& dx = ctx.output(0, dy.dtype(), x_shape_);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      backward(ctx.input(1).data<T>(), dy.data<T>(), dx.data<T>());
    });
  }

 private:
  template <typename T>
  void backward(const T* x, const T* dy, T* dx) const {
    const int64_t isz = g_.in_size(), osz = g_.out_size();
    parallel_for(g_.n * g_.c, [&](int64_t nc) {
      const T* xi = x + nc * isz;
      const T* d = dy + nc * osz;
      T* dxi = dx + nc * isz;
      std::fill_n(dxi, isz, T(0));
      for (int64_t o0 = 0; o0 < g_.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < g_.out[1]; ++o1, d += g_.out[2]) {
          if (count_[0][o0] && count_[1][o1]) row(xi, o0, o1, d, dxi);
        }
    }, 1);
  }

  // Each window of an output row takes its first point, then strictly greater ones in the
  // forward's order (a NaN first point stays): the forward's first maximum. As selects, not
  // branches: which point wins is data (branches made this 3x slower). One window's chain
  // of compare-and-select is serial, so windows whose points lie wholly inside the row go
  // four at a time, as independent chains or in vector lanes.
  template <typename T>
  void row(const T* xi, int64_t o0, int64_t o1, const T* d, T* dxi) const {
    struct Chain {
      int64_t best;
      T value;
      void step(const T* xi, int64_t at) {
        const bool take = xi[at] > value;
        best = take ? at : best;
        value = take ? xi[at] : value;
      }
    };
    const int64_t row0 = (first_[0][o0] * g_.in[1] + first_[1][o1]) * g_.in[2];
    const int64_t k2 = g_.k[2], s2 = g_.s[2], d2 = g_.d[2];
    auto start = [&](int64_t o2) { return Chain{row0 + first_[2][o2], xi[row0 + first_[2][o2]]}; };
    for (int64_t o2 = 0; o2 < g_.out[2];) {
      // count_[2] is k2 on one contiguous run of windows (those not clipped), where each
      // window starts s2 after the one before.
      const bool four_whole = o2 + 4 <= g_.out[2] && count_[2][o2] == k2 && count_[2][o2 + 3] == k2;
      if constexpr (std::is_same_v<T, float>) {
        if (four_whole && vector_stride_ && first_[2][o2 + 3] + (k2 - 1) * d2 + vector_stride_ <= g_.in[2]) {
          four_in_lanes(xi, o0, o1, o2, d, dxi);
          o2 += 4;
          continue;
        }
      }
      if (four_whole) {
        Chain c0 = start(o2), c1 = start(o2 + 1), c2 = start(o2 + 2), c3 = start(o2 + 3);
        for (int64_t a = 0, i0 = first_[0][o0]; a < count_[0][o0]; ++a, i0 += g_.d[0])
          for (int64_t b = 0, i1 = first_[1][o1]; b < count_[1][o1]; ++b, i1 += g_.d[1]) {
            const int64_t base = (i0 * g_.in[1] + i1) * g_.in[2] + first_[2][o2];
            for (int64_t c = 0, at = base; c < k2; ++c, at += d2) {
              c0.step(xi, at);
              c1.step(xi, at + s2);
              c2.step(xi, at + 2 * s2);
              c3.step(xi, at + 3 * s2);
            }
          }
        dxi[c0.best] += d[o2];
        dxi[c1.best] += d[o2 + 1];
        dxi[c2.best] += d[o2 + 2];
        dxi[c3.best] += d[o2 + 3];
        o2 += 4;
        continue;
      }
      if (count_[2][o2]) {
        Chain c0 = start(o2);
        for (int64_t a = 0, i0 = first_[0][o0]; a < count_[0][o0]; ++a, i0 += g_.d[0])
          for (int64_t b = 0, i1 = first_[1][o1]; b < count_[1][o1]; ++b, i1 += g_.d[1]) {
            const int64_t base = (i0 * g_.in[1] + i1) * g_.in[2] + first_[2][o2];
            for (int64_t c = 0, at = base; c < count_[2][o2]; ++c, at += d2) c0.step(xi, at);
          }
        dxi[c0.best] += d[o2];
      }
      ++o2;
    }
  }

  // Four whole windows of a float row in vector lanes, one compare for 4 points. Stride 1
  // loads 4 neighbours; stride 2 loads 8 and keeps the even ones (the second load reaches
  // one float past the last point, which the caller checked lies inside the row).
  void four_in_lanes(const float* xi, int64_t o0, int64_t o1, int64_t o2, const float* d, float* dxi) const {
    typedef float Floats __attribute__((vector_size(16)));
    typedef int32_t Offsets __attribute__((vector_size(16)));
    const int32_t s2 = static_cast<int32_t>(vector_stride_);
    const Offsets lane = Offsets{0, 1, 2, 3} * s2;
    auto load = [&](int64_t at) {
      Floats a;
      std::memcpy(&a, xi + at, sizeof a);
      if (s2 == 1) return a;
      Floats b;
      std::memcpy(&b, xi + at + 4, sizeof b);
      return __builtin_shufflevector(a, b, 0, 2, 4, 6);
    };
    const int64_t row0 = (first_[0][o0] * g_.in[1] + first_[1][o1]) * g_.in[2] + first_[2][o2];
    Offsets best = static_cast<int32_t>(row0) + lane;
    Floats best_value = load(row0);
    for (int64_t a = 0, i0 = first_[0][o0]; a < count_[0][o0]; ++a, i0 += g_.d[0])
      for (int64_t b = 0, i1 = first_[1][o1]; b < count_[1][o1]; ++b, i1 += g_.d[1]) {
        const int64_t base = (i0 * g_.in[1] + i1) * g_.in[2] + first_[2][o2];
        for (int64_t c = 0, at = base; c < g_.k[2]; ++c, at += g_.d[2]) {
          const Floats v = load(at);
          const Offsets take = v > best_value;
          best = ((static_cast<int32_t>(at) + lane) & take) | (best & ~take);
          best_value = reinterpret_cast<Floats>((reinterpret_cast<Offsets>(v) & take) |
                                                (reinterpret_cast<Offsets>(best_value) & ~take));
        }
      }
    for (int l = 0; l < 4; ++l) dxi[best[l]] += d[o2 + l];
  }

  PoolGeometry g_;
  Shape x_shape_;  // kept: a run allocates no shapes
  std::array<std::vector<int64_t>, kMaxSpatial> first_, count_;
  // 1 or 2 when four_in_lanes can take float windows (plane offsets fit its int32 lanes).
  int64_t vector_stride_ = 0;
};

std::unique_ptr<Kernel> try_dnnl_pool_grad(const PoolGeometry& g, dnnl::algorithm alg, DType dtype) {
  if (dtype != DType::Float || g.n * g.c * g.out_size() == 0) return nullptr;
  try {
    return std::make_unique<DnnlPoolGradKernel>(g, alg);
  } catch (const dnnl::error&) {
    return nullptr;
  }
}

// (dY, X[, Y]) -> dX with the own loop.
template <PoolKind K>
std::unique_ptr<Kernel> own_pool_grad(const PoolGeometry& g, double p = 0) {
  return make_function_kernel([g, p](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    Tensor& dx = ctx.output(0, dy.dtype(), g.in_shape());
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* x = ctx.has_input(1) ? ctx.input(1).data<T>() : nullptr;
      const T* y = K == PoolKind::Lp ? ctx.input(2).data<T>() : nullptr;
      pool_backward_loop<T, K>(g, x, y, dy.data<T>(), dx.data<T>(), p);
    });
  });
}

PoolGeometry grad_geometry(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || !in[0].present || !in[1].present) fail(node, "needs inputs dY and X");
  const PoolGeometry g = pool_geometry(node, in[1].shape);
  if (in[0].shape != g.out_shape())
    fail_shape(node, "dY " + shape_str(in[0].shape) + " does not match the output " + shape_str(g.out_shape()));
  if (in[0].dtype != in[1].dtype || !is_floating(in[0].dtype)) fail(node, "dY and X must have the same float type");
  return g;
}

std::unique_ptr<Kernel> make_max_pool_grad(const Node& node, const std::vector<InputInfo>& in) {
  return std::make_unique<MaxPoolGradKernel>(grad_geometry(node, in));
}

std::unique_ptr<Kernel> make_average_pool_grad(const Node& node, const std::vector<InputInfo>& in) {
  const PoolGeometry g = grad_geometry(node, in);
  const bool include_pad = node.attr_int("count_include_pad", 0) != 0;
  // The forward's choice exactly: oneDNN unless ceil_mode extends a window with include_pad.
  if (!include_pad || !g.ceil_extended()) {
    auto alg = include_pad ? dnnl::algorithm::pooling_avg_include_padding : dnnl::algorithm::pooling_avg_exclude_padding;
    if (auto k = try_dnnl_pool_grad(g, alg, in[0].dtype)) return k;
  }
  return include_pad ? own_pool_grad<PoolKind::AvgIncludePad>(g) : own_pool_grad<PoolKind::AvgExcludePad>(g);
}

std::unique_ptr<Kernel> make_lp_pool_grad(const Node& node, const std::vector<InputInfo>& in) {
  const PoolGeometry g = grad_geometry(node, in);
  if (in.size() < 3 || in[2].shape != g.out_shape()) fail_shape(node, "needs Y as input 2");
  const double p = node.attr_float("p", 2.f);  // the rule writes it as a float
  return own_pool_grad<PoolKind::Lp>(g, p);
}

// GlobalAveragePoolGrad / GlobalMaxPoolGrad (dY, X) -> dX: dY / spatial size everywhere, or
// dY at each row's first maximum (the one the forward reports) and zeros elsewhere.
template <bool Max>
std::unique_ptr<Kernel> make_global_pool_grad(const Node& node, const std::vector<InputInfo>& in) {
  if (in.size() < 2 || in[1].shape.size() < 3) fail_shape(node, "needs inputs dY and X ([N, C, d1, ...])");
  const Shape x = in[1].shape;
  const int64_t rows = x[0] * x[1], len = shape_numel(x) / std::max<int64_t>(rows, 1);
  if (shape_numel(in[0].shape) != rows) fail_shape(node, "dY " + shape_str(in[0].shape) + " does not match X " + shape_str(x));
  return make_function_kernel([x, rows, len](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    Tensor& dx = ctx.output(0, dy.dtype(), x);
    dispatch_float(dy.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* d = dy.data<T>();
      const T* src = Max ? ctx.input(1).data<T>() : nullptr;
      T* dst = dx.data<T>();
      parallel_for(rows, [&](int64_t r) {
        T* row = dst + r * len;
        if constexpr (Max) {
          const T* xr = src + r * len;
          int64_t best = 0;
          for (int64_t i = 1; i < len; ++i)
            if (xr[i] > xr[best]) best = i;
          std::fill_n(row, len, T(0));
          if (len) row[best] = d[r];
        } else {
          std::fill_n(row, len, static_cast<T>(static_cast<double>(d[r]) / static_cast<double>(len)));
        }
      }, std::max<int64_t>(1, 16384 / std::max<int64_t>(len, 1)));
    });
  });
}

void max_pool_gradient(GradientBuilder& b) { pool_grad_rule(b, "MaxPoolGrad", {b.I(0)}); }
void average_pool_gradient(GradientBuilder& b) { pool_grad_rule(b, "AveragePoolGrad", {b.I(0)}); }
void lp_pool_gradient(GradientBuilder& b) {
  // p is a float before opset 2 and an int since; LpPoolGrad always takes it as a float.
  const Node& n = b.node();
  const float p = n.opset < 2 ? n.attr_float("p", 2.f) : static_cast<float>(n.attr_int("p", 2));
  Attributes attrs = n.attributes;
  attrs["p"] = p;
  b.GI(0, b.train_op("LpPoolGrad", {b.GO(0), b.I(0), b.O(0)}, attrs));
}
void global_average_pool_gradient(GradientBuilder& b) { pool_grad_rule(b, "GlobalAveragePoolGrad", {b.I(0)}); }
void global_max_pool_gradient(GradientBuilder& b) { pool_grad_rule(b, "GlobalMaxPoolGrad", {b.I(0)}); }

}  // namespace

void register_pool_ops(Registry& r) {
  const char* t = graph::kTrainingDomain;
  r.add({"", "MaxPool", 1, INT_MAX, make_max_pool, "oneDNN pooling_v2", max_pool_gradient});
  r.add({"", "AveragePool", 1, INT_MAX, make_average_pool, "oneDNN pooling_v2", average_pool_gradient});
  r.add({"", "LpPool", 1, INT_MAX, make_lp_pool, "own", lp_pool_gradient});
  r.add({"", "GlobalAveragePool", 1, INT_MAX, make_global_pool<false>, "own", global_average_pool_gradient});
  r.add({"", "GlobalMaxPool", 1, INT_MAX, make_global_pool<true>, "own", global_max_pool_gradient});
  r.add({t, "MaxPoolGrad", 1, INT_MAX, make_max_pool_grad, "oneDNN pooling_v2 backward"});
  r.add({t, "AveragePoolGrad", 1, INT_MAX, make_average_pool_grad, "oneDNN pooling_v2 backward"});
  r.add({t, "LpPoolGrad", 1, INT_MAX, make_lp_pool_grad, "own"});
  r.add({t, "GlobalAveragePoolGrad", 1, INT_MAX, make_global_pool_grad<false>, "own"});
  r.add({t, "GlobalMaxPoolGrad", 1, INT_MAX, make_global_pool_grad<true>, "own"});
  register_unpool_roi_align_ops(r);
}

}  // namespace onnxtrain::ops
