// Conv and ConvTranspose on oneDNN convolution / deconvolution (float32): the primitives pick
// their preferred ("any") layouts and Reorderers convert from and to our row-major tensors;
// all of it is built at plan time. Own direct loops serve double and the geometries oneDNN
// rejects.
#include <array>
#include <optional>
#include <string>

#include "ops/dnnl_utils.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

constexpr int kMaxSpatial = 3;  // oneDNN's limit; the own loops use the same 3-D form
using Dims3 = std::array<int64_t, kMaxSpatial>;

// The geometry of one (transposed) convolution. Spatial arrays are right-aligned in 3-D form:
// a 1-D convolution has in = {1, 1, w}, k = {1, 1, kw}, unit strides/dilations and zero pads
// in front, so one loop nest covers 1-D to 3-D.
struct Geometry {
  int nsp = 0;
  int64_t n = 0, c = 0, m = 0, group = 1;  // batch, input channels, output channels, groups
  Dims3 in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, s{1, 1, 1}, d{1, 1, 1}, pb{0, 0, 0}, pe{0, 0, 0};
  Dims3 out_pad{0, 0, 0};  // ConvTranspose only

  int64_t in_size() const { return in[0] * in[1] * in[2]; }
  int64_t out_size() const { return out[0] * out[1] * out[2]; }
  int64_t k_size() const { return k[0] * k[1] * k[2]; }
  int64_t ext(int i) const { return (k[i] - 1) * d[i] + 1; }  // dilated kernel extent
  // The last nsp entries of a 3-D array, as oneDNN wants them (with an offset, e.g. -1 for
  // oneDNN's zero-based dilation).
  dnnl::memory::dims dnnl(const Dims3& v, int64_t offset = 0) const {
    dnnl::memory::dims r;
    for (int i = kMaxSpatial - nsp; i < kMaxSpatial; ++i) r.push_back(v[i] + offset);
    return r;
  }
  Shape out_shape() const {
    Shape y{n, m};
    for (int i = kMaxSpatial - nsp; i < kMaxSpatial; ++i) y.push_back(out[i]);
    return y;
  }
};

// Reads the attributes common to Conv and ConvTranspose into g (x and w shapes checked by
// the caller). Pads are resolved by the caller since the two ops differ there.
void read_common(const Node& node, const Shape& x, const Shape& w, Geometry& g, std::vector<int64_t>& pads) {
  if (x.size() < 3 || x.size() > 2 + kMaxSpatial)
    fail_shape(node, "input X must have 1 to 3 spatial dims ([N, C, d1, ...]), got " + shape_str(x));
  if (w.size() != x.size()) fail_shape(node, "weights " + shape_str(w) + " do not match input " + shape_str(x));
  g.nsp = static_cast<int>(x.size()) - 2;
  const size_t nsp = static_cast<size_t>(g.nsp);
  g.n = x[0];
  g.c = x[1];
  g.group = node.attr_int("group", 1);
  if (g.group < 1) fail(node, "group must be positive, got " + std::to_string(g.group));
  auto ints = [&](const char* name, int64_t fallback, size_t count, int64_t min) {
    auto v = node.attr_ints(name, std::vector<int64_t>(count, fallback));
    if (v.size() != count)
      fail(node, std::string(name) + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(count));
    for (int64_t e : v)
      if (e < min) fail(node, std::string(name) + " must be >= " + std::to_string(min) + ", got " + std::to_string(e));
    return v;
  };
  const Shape wk(w.begin() + 2, w.end());
  if (node.has_attr("kernel_shape") && node.attr_ints("kernel_shape") != wk)
    fail_shape(node, "kernel_shape attribute does not match weights " + shape_str(w));
  const auto strides = ints("strides", 1, nsp, 1);
  const auto dilations = ints("dilations", 1, nsp, 1);
  pads = ints("pads", 0, 2 * nsp, 0);
  const size_t off = kMaxSpatial - nsp;
  for (size_t i = 0; i < nsp; ++i) {
    g.in[off + i] = x[2 + i];
    g.k[off + i] = wk[i];
    g.s[off + i] = strides[i];
    g.d[off + i] = dilations[i];
  }
}

dnnl::memory::desc any_desc(const Shape& shape) {
  return dnnl::memory::desc(dnnl_dims(shape), dnnl::memory::data_type::f32, dnnl::memory::format_tag::any);
}

// Direct convolution, y[n, oc, o] = b[oc] + sum x[n, ic, o * s - pb + k * d] * w[oc, ic, k].
template <typename T>
void conv_loop(const Geometry& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.c / g.group, mg = g.m / g.group, isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
  parallel_for(g.n * g.m, [&](int64_t nm) {
    const int64_t nn = nm / g.m, oc = nm % g.m, grp = oc / mg;
    T* yo = y + nm * osz;
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
          T acc = b ? b[oc] : T(0);
          for (int64_t ic = 0; ic < cg; ++ic) {
            const T* xi = x + (nn * g.c + grp * cg + ic) * isz;
            const T* wi = w + (oc * cg + ic) * ksz;
            for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
              const int64_t i0 = o0 * g.s[0] - g.pb[0] + k0 * g.d[0];
              if (i0 < 0 || i0 >= g.in[0]) continue;
              for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
                const int64_t i1 = o1 * g.s[1] - g.pb[1] + k1 * g.d[1];
                if (i1 < 0 || i1 >= g.in[1]) continue;
                for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                  const int64_t i2 = o2 * g.s[2] - g.pb[2] + k2 * g.d[2];
                  if (i2 < 0 || i2 >= g.in[2]) continue;
                  acc += xi[(i0 * g.in[1] + i1) * g.in[2] + i2] * wi[(k0 * g.k[1] + k1) * g.k[2] + k2];
                }
              }
            }
          }
          yo[(o0 * g.out[1] + o1) * g.out[2] + o2] = acc;
        }
  }, 1);
}

// Transposed convolution in gather form (so output elements are independent):
// y[n, oc, o] = b[oc] + sum over i * s = o + pb - k * d of x[n, ic, i] * w[ic, oc, k].
template <typename T>
void conv_transpose_loop(const Geometry& g, const T* x, const T* w, const T* b, T* y) {
  const int64_t cg = g.c / g.group, mg = g.m / g.group, isz = g.in_size(), osz = g.out_size(), ksz = g.k_size();
  auto source = [&](int dim, int64_t o, int64_t k, int64_t& i) {
    const int64_t t = o + g.pb[dim] - k * g.d[dim];
    if (t < 0 || t % g.s[dim] != 0) return false;
    i = t / g.s[dim];
    return i < g.in[dim];
  };
  parallel_for(g.n * g.m, [&](int64_t nm) {
    const int64_t nn = nm / g.m, oc = nm % g.m, grp = oc / mg, ocg = oc % mg;
    T* yo = y + nm * osz;
    for (int64_t o0 = 0; o0 < g.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < g.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < g.out[2]; ++o2) {
          T acc = b ? b[oc] : T(0);
          for (int64_t ic = 0; ic < cg; ++ic) {
            const int64_t cin = grp * cg + ic;
            const T* xi = x + (nn * g.c + cin) * isz;
            const T* wi = w + (cin * mg + ocg) * ksz;
            int64_t i0, i1, i2;
            for (int64_t k0 = 0; k0 < g.k[0]; ++k0) {
              if (!source(0, o0, k0, i0)) continue;
              for (int64_t k1 = 0; k1 < g.k[1]; ++k1) {
                if (!source(1, o1, k1, i1)) continue;
                for (int64_t k2 = 0; k2 < g.k[2]; ++k2) {
                  if (!source(2, o2, k2, i2)) continue;
                  acc += xi[(i0 * g.in[1] + i1) * g.in[2] + i2] * wi[(k0 * g.k[1] + k1) * g.k[2] + k2];
                }
              }
            }
          }
          yo[(o0 * g.out[1] + o1) * g.out[2] + o2] = acc;
        }
  }, 1);
}

// Runs a oneDNN (de)convolution built at plan time: reorders X and W into the layouts the
// primitive chose, and its result back into the row-major output. A constant W (inference)
// is reordered once at plan time.
class DnnlConvKernel final : public Kernel {
 public:
  template <typename PrimitiveDesc>
  DnnlConvKernel(const Geometry& g, const PrimitiveDesc& pd, const dnnl::memory::desc& w_plain, bool has_bias,
                 const Tensor* constant_w)
      : y_shape_(g.out_shape()), has_bias_(has_bias), pd_(pd), primitive_(pd) {
    Shape x_shape{g.n, g.c};
    for (int i = kMaxSpatial - g.nsp; i < kMaxSpatial; ++i) x_shape.push_back(g.in[i]);
    x_md_ = plain_desc(x_shape, DType::Float);
    y_md_ = plain_desc(y_shape_, DType::Float);
    w_md_ = w_plain;
    bias_md_ = plain_desc({g.m}, DType::Float);
    src_ = Reorderer(x_md_, pd.src_desc());
    weights_ = Reorderer(w_md_, pd.weights_desc());
    dst_ = Reorderer(pd.dst_desc(), y_md_);
    if (dst_.needed()) dst_scratch_ = dnnl::memory(pd.dst_desc(), cpu_engine());
    if (constant_w) {
      constant_w_ = weights_(bind(w_md_, *constant_w), w_scratch_);
      if (!weights_.needed()) constant_w_ = {};  // binding the input at run time is as cheap
    }
  }

  void run(KernelContext& ctx) override {
    Tensor& y = ctx.output(0, DType::Float, y_shape_);
    dnnl::memory src = src_(bind(x_md_, ctx.input(0)), x_scratch_);
    dnnl::memory w = constant_w_ ? constant_w_ : weights_(bind(w_md_, ctx.input(1)), w_scratch_);
    dnnl::memory out = bind(y_md_, y);
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst_.needed() ? dst_scratch_ : out}};
    if (has_bias_) args[DNNL_ARG_BIAS] = bind(bias_md_, ctx.input(2));
    execute(primitive_, args);
    if (dst_.needed()) dst_(dst_scratch_, out);
  }

 private:
  Shape y_shape_;
  bool has_bias_;
  dnnl::primitive_desc pd_;  // kept as the hint for the backward primitives
  dnnl::primitive primitive_;
  dnnl::memory::desc x_md_, y_md_, w_md_, bias_md_;
  Reorderer src_, weights_, dst_;
  dnnl::memory x_scratch_, w_scratch_, dst_scratch_, constant_w_;
};

template <bool Transposed>
std::unique_ptr<Kernel> own_kernel(const Geometry& g, bool has_bias) {
  return make_function_kernel([g, has_bias](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& y = ctx.output(0, x.dtype(), g.out_shape());
    dispatch_float(x.dtype(), ctx.node(), [&](auto tag) {
      using T = decltype(tag);
      const T* b = has_bias ? ctx.input(2).data<T>() : nullptr;
      if constexpr (Transposed)
        conv_transpose_loop<T>(g, x.data<T>(), ctx.input(1).data<T>(), b, y.data<T>());
      else
        conv_loop<T>(g, x.data<T>(), ctx.input(1).data<T>(), b, y.data<T>());
    });
  });
}

void check_inputs(const Node& node, const std::vector<InputInfo>& in, int64_t out_channels) {
  if (in[1].dtype != in[0].dtype) fail(node, "X and W have different element types");
  if (in.size() > 2 && in[2].present) {
    if (in[2].dtype != in[0].dtype) fail(node, "B has a different element type than X");
    if (in[2].shape != Shape{out_channels})
      fail_shape(node, "bias " + shape_str(in[2].shape) + " must be [" + std::to_string(out_channels) + "]");
  }
}

bool dnnl_applicable(const Geometry& g, DType dtype) {
  return dtype == DType::Float && g.n > 0 && g.c > 0 && g.m > 0 && g.out_size() > 0;
}

// ---------------------------------------------------------------------------------------------

std::unique_ptr<Kernel> make_conv(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  Geometry g;
  std::vector<int64_t> pads;
  read_common(node, x, w, g, pads);
  g.m = w[0];
  if (g.c % g.group != 0 || w[1] * g.group != g.c || g.m % g.group != 0)
    fail_shape(node, "input " + shape_str(x) + ", weights " + shape_str(w) + " and group " + std::to_string(g.group) +
                         " do not fit (W must be [M, C/group, k...] with M divisible by group)");
  check_inputs(node, in, g.m);
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  const int off = kMaxSpatial - g.nsp;
  for (int i = off; i < kMaxSpatial; ++i) {
    if (auto_pad == "NOTSET") {
      g.pb[i] = pads[i - off];
      g.pe[i] = pads[i - off + g.nsp];
    } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      const int64_t out = (g.in[i] + g.s[i] - 1) / g.s[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * g.s[i] + g.ext(i) - g.in[i]);
      g.pb[i] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      g.pe[i] = total - g.pb[i];
    } else if (auto_pad != "VALID") {
      fail(node, "unknown auto_pad '" + auto_pad + "'");
    }
    const int64_t span = g.in[i] + g.pb[i] + g.pe[i] - g.ext(i);
    if (span < 0)
      fail_shape(node, "the dilated kernel " + shape_str(Shape(w.begin() + 2, w.end())) +
                           " is larger than the padded input " + shape_str(x));
    g.out[i] = span / g.s[i] + 1;
  }
  const bool has_bias = in.size() > 2 && in[2].present;
  if (dnnl_applicable(g, in[0].dtype)) {
    Shape wd = w;  // grouped weights as [G, M/G, C/G, k...] (same memory)
    if (g.group > 1) {
      wd[0] = g.m / g.group;
      wd.insert(wd.begin(), g.group);
    }
    dnnl::convolution_forward::desc desc =
        has_bias ? dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                   any_desc(x), any_desc(wd), plain_desc({g.m}, DType::Float),
                                                   any_desc(g.out_shape()), g.dnnl(g.s), g.dnnl(g.d, -1), g.dnnl(g.pb),
                                                   g.dnnl(g.pe))
                 : dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                                   any_desc(x), any_desc(wd), any_desc(g.out_shape()), g.dnnl(g.s),
                                                   g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(g.pe));
    dnnl::convolution_forward::primitive_desc pd(desc, cpu_engine());
    return std::make_unique<DnnlConvKernel>(g, pd, plain_desc(wd, DType::Float), has_bias, in[1].constant);
  }
  return own_kernel<false>(g, has_bias);
}

std::unique_ptr<Kernel> make_conv_transpose(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  Geometry g;
  std::vector<int64_t> pads;
  read_common(node, x, w, g, pads);
  g.m = w[1] * g.group;
  if (w[0] != g.c || g.c % g.group != 0)
    fail_shape(node, "input " + shape_str(x) + ", weights " + shape_str(w) + " and group " + std::to_string(g.group) +
                         " do not fit (W must be [C, M/group, k...] with C divisible by group)");
  check_inputs(node, in, g.m);
  const size_t nsp = static_cast<size_t>(g.nsp);
  const std::string auto_pad = node.attr_string("auto_pad", "NOTSET");
  auto out_pad = node.attr_ints("output_padding", std::vector<int64_t>(nsp, 0));
  auto out_shape = node.attr_ints("output_shape");
  if (out_shape.size() == nsp + 2) out_shape.erase(out_shape.begin(), out_shape.begin() + 2);  // full shape given
  if (out_pad.size() != nsp || (!out_shape.empty() && out_shape.size() != nsp))
    fail(node, "output_padding / output_shape must have one value per spatial dim");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    fail(node, "unknown auto_pad '" + auto_pad + "'");
  const int off = kMaxSpatial - g.nsp;
  for (int i = off; i < kMaxSpatial; ++i) {
    const int64_t op = out_pad[i - off];
    if (op < 0 || (op >= g.s[i] && op >= g.d[i]))
      fail(node, "output_padding " + std::to_string(op) + " must be smaller than the stride or the dilation");
    g.out_pad[i] = op;
    const int64_t full = g.s[i] * (g.in[i] - 1) + op + g.ext(i);
    int64_t target = -1;
    if (!out_shape.empty()) target = out_shape[i - off];
    else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") target = g.in[i] * g.s[i];
    if (target >= 0) {
      // Padding derived from the requested size by ONNX's equations, with floor division:
      // a requested output larger than the full transposed convolution gives a negative
      // end pad, i.e. extra trailing elements that only get the bias.
      const int64_t total = full - target;
      const int64_t half = total >= 0 ? total / 2 : -((1 - total) / 2);
      g.pb[i] = auto_pad == "SAME_UPPER" ? half : total - half;
      g.pe[i] = total - g.pb[i];
    } else if (auto_pad == "NOTSET") {
      g.pb[i] = pads[i - off];
      g.pe[i] = pads[i - off + g.nsp];
    }
    g.out[i] = full - g.pb[i] - g.pe[i];
    if (g.out[i] < 0) fail_shape(node, "pads are larger than the output of the transposed convolution");
  }
  const bool has_bias = in.size() > 2 && in[2].present;
  bool dnnl_ok = dnnl_applicable(g, in[0].dtype);
  for (int i = off; i < kMaxSpatial; ++i)
    // oneDNN takes output_padding as a smaller right pad, which must stay > -stride.
    dnnl_ok = dnnl_ok && g.pb[i] >= 0 && g.pe[i] - g.out_pad[i] + g.s[i] > 0;
  if (dnnl_ok) {
    // oneDNN's deconvolution weights are [G, OC/G, IC/G, k...]; ONNX's are [IC, OC/G, k...],
    // i.e. [G, IC/G, OC/G, k...]: describe ONNX's memory with swapped strides.
    const int64_t ksz = g.k_size(), cg = g.c / g.group, mg = g.m / g.group;
    Shape wd{mg, cg}, ws{ksz, mg * ksz};
    if (g.group > 1) {
      wd.insert(wd.begin(), g.group);
      ws.insert(ws.begin(), cg * mg * ksz);
    }
    const Shape kstrides = strides_of(Shape(w.begin() + 2, w.end()));
    for (size_t i = 0; i < nsp; ++i) {
      wd.push_back(w[2 + i]);
      ws.push_back(kstrides[i]);
    }
    Dims3 pe_r;
    for (int i = 0; i < kMaxSpatial; ++i) pe_r[i] = g.pe[i] - g.out_pad[i];
    dnnl::deconvolution_forward::desc desc =
        has_bias ? dnnl::deconvolution_forward::desc(
                       dnnl::prop_kind::forward_training, dnnl::algorithm::deconvolution_direct, any_desc(x), any_desc(wd),
                       plain_desc({g.m}, DType::Float), any_desc(g.out_shape()), g.dnnl(g.s), g.dnnl(g.d, -1),
                       g.dnnl(g.pb), g.dnnl(pe_r))
                 : dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_training,
                                                     dnnl::algorithm::deconvolution_direct, any_desc(x), any_desc(wd),
                                                     any_desc(g.out_shape()), g.dnnl(g.s), g.dnnl(g.d, -1),
                                                     g.dnnl(g.pb), g.dnnl(pe_r));
    dnnl::deconvolution_forward::primitive_desc pd(desc, cpu_engine());
    return std::make_unique<DnnlConvKernel>(g, pd, strided_desc(wd, DType::Float, ws), has_bias, in[1].constant);
  }
  return own_kernel<true>(g, has_bias);
}

}  // namespace

void register_conv_ops(Registry& r) {
  r.add({"", "Conv", 1, INT_MAX, make_conv, "oneDNN convolution"});
  r.add({"", "ConvTranspose", 1, INT_MAX, make_conv_transpose, "oneDNN deconvolution"});
}

}  // namespace onnxtrain::ops
