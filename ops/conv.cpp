// Conv and ConvTranspose on oneDNN convolution / deconvolution (float32; bf16 inputs with
// float32 results under mixed precision): the primitives pick their preferred ("any")
// layouts and element types, and Reorderers convert from and to our row-major tensors;
// all of it is built at plan time. Own direct loops serve double and the geometries oneDNN
// rejects (conv_loops.cpp); shared definitions: conv_common.h.
#include "ops/conv_common.h"

namespace onnxtrain::ops {

namespace {

using namespace conv_impl;

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

// `type` is the node's compute_type for sources, weights and diff_dst (bf16 under mixed
// precision); results (dst, diff_src, diff_weights) stay f32, so oneDNN accumulates and
// writes float32 and the Reorderers convert the inputs on the way in.
dnnl::memory::desc any_desc(const Shape& shape, dnnl::memory::data_type type = dnnl::memory::data_type::f32) {
  return dnnl::memory::desc(dnnl_dims(shape), type, dnnl::memory::format_tag::any);
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
    dst_desc_ = pd.dst_desc();
    if (constant_w) {
      constant_w_ = weights_(bind(w_md_, *constant_w), constant_w_buffer_);
      if (!weights_.needed()) constant_w_ = {};  // binding the input at run time is as cheap
    }
  }

  void run(KernelContext& ctx) override {
    Tensor& y = ctx.output(0, DType::Float, y_shape_);
    // Converted layouts live in the scratch arena while this runs (dnnl_utils.h).
    dnnl::memory src = src_(bind(x_md_, ctx.input(0)));
    dnnl::memory w = constant_w_ ? constant_w_ : weights_(bind(w_md_, ctx.input(1)));
    dnnl::memory out = bind(y_md_, y);
    dnnl::memory dst = dst_.needed() ? scratch_memory(dst_desc_) : out;
    ExecArgs args{{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DST, dst}};
    if (has_bias_) args[DNNL_ARG_BIAS] = bind(bias_md_, ctx.input(2));
    execute(primitive_, args);
    if (dst_.needed()) dst_(dst, out);
  }

 private:
  Shape y_shape_;
  bool has_bias_;
  dnnl::primitive_desc pd_;  // kept as the hint for the backward primitives
  dnnl::primitive primitive_;
  dnnl::memory::desc x_md_, y_md_, w_md_, bias_md_, dst_desc_;
  Reorderer src_, weights_, dst_;
  dnnl::memory constant_w_buffer_, constant_w_;  // constant weights, converted once
};
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

// Conv's geometry from X and W (the bias is checked by the caller).
Geometry conv_geometry(const Node& node, const Shape& x, const Shape& w) {
  Geometry g;
  std::vector<int64_t> pads;
  read_common(node, x, w, g, pads);
  g.m = w[0];
  if (g.c % g.group != 0 || w[1] * g.group != g.c || g.m % g.group != 0)
    fail_shape(node, "input " + shape_str(x) + ", weights " + shape_str(w) + " and group " + std::to_string(g.group) +
                         " do not fit (W must be [M, C/group, k...] with M divisible by group)");
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
  return g;
}

// Conv weights as oneDNN sees them: grouped weights as [G, M/G, C/G, k...] (same memory).
Shape conv_dnnl_weights(const Geometry& g, Shape w) {
  if (g.group > 1) {
    w[0] = g.m / g.group;
    w.insert(w.begin(), g.group);
  }
  return w;
}

dnnl::convolution_forward::desc conv_forward_desc(const Geometry& g, const Shape& x, const Shape& wd, bool has_bias,
                                                  dnnl::memory::data_type type, dnnl::algorithm alg) {
  if (has_bias)
    return dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, any_desc(x, type), any_desc(wd, type),
                                           plain_desc({g.m}, DType::Float), any_desc(g.out_shape()), g.dnnl(g.s),
                                           g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(g.pe));
  return dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, any_desc(x, type), any_desc(wd, type),
                                         any_desc(g.out_shape()), g.dnnl(g.s), g.dnnl(g.d, -1), g.dnnl(g.pb),
                                         g.dnnl(g.pe));
}

// ConvGrad's algorithm: Winograd F(4x4, 3x3) where it pays. oneDNN's kernel (jit_wino_4x3)
// against the direct one over 3x3 stride-1 convolutions, batch 8 and 32, 1 and 2 threads,
// 16-256 channels, 4x4 to 64x64 outputs: it takes 0.3-0.75 of the time in all three
// directions once there are enough channels and 4x4 output tiles (>= 64 channels and >= 128
// tiles, or >= 32 channels and >= 512 tiles), and up to 12x longer below that. The backward
// passes stay as close to float64 as PyTorch's float32 (torchvision resnet18 in the family
// harness, docs/numerics.md: worst 0.46 of the allowed distance, direct 0.26). The forward
// does not: its error is 4x the direct algorithm's, enough that in resnet18's first step one
// ReLU input 2.5e-6 from zero changed sign where PyTorch's did not, moving every gradient
// upstream of it by ~1e-3 relative. So Conv keeps the direct algorithm.
// A node can ask for the direct algorithm (TrainingOptions::conv_algorithm).
dnnl::algorithm conv_algorithm(const Node& node, const Geometry& g, dnnl::memory::data_type type) {
  const bool square3 = g.nsp == 2 && g.k[1] == 3 && g.k[2] == 3;
  const bool unit = g.s[1] == 1 && g.s[2] == 1 && g.d[1] == 1 && g.d[2] == 1;
  const int64_t channels = std::min(g.c, g.m), tiles = g.n * ((g.out[1] + 3) / 4) * ((g.out[2] + 3) / 4);
  const bool pays = (channels >= 64 && tiles >= 128) || (channels >= 32 && tiles >= 512);
  const bool allowed = node.attr_string(graph::kConvAlgorithmAttr, "auto") != "direct";
  if (allowed && pays && type == dnnl::memory::data_type::f32 && g.group == 1 && square3 && unit)
    return dnnl::algorithm::convolution_winograd;
  return dnnl::algorithm::convolution_direct;
}

// The primitive descriptor for `alg`, or for the direct algorithm when oneDNN has no
// Winograd kernel for the shape on this CPU.
template <typename Pd, typename MakeDesc, typename... Hint>
Pd make_pd(dnnl::algorithm& alg, MakeDesc make_desc, const Hint&... hint) {
  if (alg != dnnl::algorithm::convolution_direct) {
    try {
      return Pd(make_desc(alg), arena_scratchpad(), cpu_engine(), hint...);
    } catch (const dnnl::error&) {
      alg = dnnl::algorithm::convolution_direct;
    }
  }
  return Pd(make_desc(alg), arena_scratchpad(), cpu_engine(), hint...);
}

std::unique_ptr<Kernel> make_conv(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  const Geometry g = conv_geometry(node, x, w);
  check_inputs(node, in, g.m);
  const bool has_bias = in.size() > 2 && in[2].present;
  if (dnnl_applicable(g, in[0].dtype)) {
    const Shape wd = conv_dnnl_weights(g, w);
    dnnl::convolution_forward::primitive_desc pd(
        conv_forward_desc(g, x, wd, has_bias, compute_type(node), dnnl::algorithm::convolution_direct),
        arena_scratchpad(), cpu_engine());
    return std::make_unique<DnnlConvKernel>(g, pd, plain_desc(wd, DType::Float), has_bias, in[1].constant);
  }
  return own_kernel<false>(g, has_bias);
}

// ConvTranspose's geometry from X and W (the bias is checked by the caller).
Geometry conv_transpose_geometry(const Node& node, const Shape& x, const Shape& w) {
  Geometry g;
  std::vector<int64_t> pads;
  read_common(node, x, w, g, pads);
  g.m = w[1] * g.group;
  if (w[0] != g.c || g.c % g.group != 0)
    fail_shape(node, "input " + shape_str(x) + ", weights " + shape_str(w) + " and group " + std::to_string(g.group) +
                         " do not fit (W must be [C, M/group, k...] with C divisible by group)");
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
  return g;
}

bool deconv_dnnl_ok(const Geometry& g, DType dtype) {
  bool ok = dnnl_applicable(g, dtype);
  for (int i = kMaxSpatial - g.nsp; i < kMaxSpatial; ++i)
    // oneDNN takes output_padding as a smaller right pad, which must stay > -stride.
    ok = ok && g.pb[i] >= 0 && g.pe[i] - g.out_pad[i] + g.s[i] > 0;
  return ok;
}

// oneDNN's deconvolution weights are [G, OC/G, IC/G, k...]; ONNX's are [IC, OC/G, k...],
// i.e. [G, IC/G, OC/G, k...]: describe ONNX's memory with swapped strides.
dnnl::memory::desc deconv_weights_desc(const Geometry& g, const Shape& w, Shape& wd) {
  const int64_t ksz = g.k_size(), cg = g.c / g.group, mg = g.m / g.group;
  wd = {mg, cg};
  Shape ws{ksz, mg * ksz};
  if (g.group > 1) {
    wd.insert(wd.begin(), g.group);
    ws.insert(ws.begin(), cg * mg * ksz);
  }
  const Shape kstrides = strides_of(Shape(w.begin() + 2, w.end()));
  for (size_t i = 0; i < static_cast<size_t>(g.nsp); ++i) {
    wd.push_back(w[2 + i]);
    ws.push_back(kstrides[i]);
  }
  return strided_desc(wd, DType::Float, ws);
}

// oneDNN's right pad for a deconvolution: output_padding shortens it.
Dims3 deconv_right_pad(const Geometry& g) {
  Dims3 pe_r;
  for (int i = 0; i < kMaxSpatial; ++i) pe_r[i] = g.pe[i] - g.out_pad[i];
  return pe_r;
}

dnnl::deconvolution_forward::desc deconv_forward_desc(const Geometry& g, const Shape& x, const Shape& wd,
                                                      bool has_bias, dnnl::memory::data_type type) {
  const Dims3 pe_r = deconv_right_pad(g);
  if (has_bias)
    return dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::deconvolution_direct,
                                             any_desc(x, type), any_desc(wd, type), plain_desc({g.m}, DType::Float),
                                             any_desc(g.out_shape()), g.dnnl(g.s), g.dnnl(g.d, -1), g.dnnl(g.pb),
                                             g.dnnl(pe_r));
  return dnnl::deconvolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::deconvolution_direct,
                                           any_desc(x, type), any_desc(wd, type), any_desc(g.out_shape()), g.dnnl(g.s),
                                           g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(pe_r));
}

std::unique_ptr<Kernel> make_conv_transpose(const Node& node, const std::vector<InputInfo>& in) {
  const Shape& x = in[0].shape;
  const Shape& w = in[1].shape;
  const Geometry g = conv_transpose_geometry(node, x, w);
  check_inputs(node, in, g.m);
  const bool has_bias = in.size() > 2 && in[2].present;
  if (deconv_dnnl_ok(g, in[0].dtype)) {
    Shape wd;
    const dnnl::memory::desc w_md = deconv_weights_desc(g, w, wd);
    dnnl::deconvolution_forward::primitive_desc pd(deconv_forward_desc(g, x, wd, has_bias, compute_type(node)),
                                                   arena_scratchpad(), cpu_engine());
    return std::make_unique<DnnlConvKernel>(g, pd, w_md, has_bias, in[1].constant);
  }
  return own_kernel<true>(g, has_bias);
}

// ---------------------------------------------------------------------------------------------
// Gradients. ai.onnxtrain.ConvGrad / ConvTransposeGrad (dY, X, W) -> (dX, dW, dB) carry the
// forward node's attributes; an output is computed only when the node declares it. The own loops
// are in conv_loops.cpp.

Shape x_shape_of(const Geometry& g) {
  Shape x{g.n, g.c};
  for (int i = kMaxSpatial - g.nsp; i < kMaxSpatial; ++i) x.push_back(g.in[i]);
  return x;
}

// float32 gradients on oneDNN's backward primitives ((de)convolution backward_data and
// backward_weights, built at plan time with the forward_training descriptor as hint), in the
// layouts they prefer, with reorders from and to our row-major tensors.
class DnnlConvGradKernel final : public Kernel {
 public:
  template <typename DataPd, typename WeightsPd>
  DnnlConvGradKernel(const Geometry& g, const Shape& w_shape, const dnnl::memory::desc& w_user, GradOutputs want,
                     const std::optional<DataPd>& data_pd, const std::optional<WeightsPd>& weights_pd,
                     std::optional<WeightsGradGemm> gemm_dw = std::nullopt)
      : g_(g), w_shape_(w_shape), want_(want), gemm_dw_(std::move(gemm_dw)) {
    x_shape_ = x_shape_of(g);
    x_md_ = plain_desc(x_shape_, DType::Float);
    y_md_ = plain_desc(g.out_shape(), DType::Float);
    w_md_ = w_user;
    if (data_pd) {
      data_ = dnnl::primitive(*data_pd);
      data_dy_ = Reorderer(y_md_, data_pd->diff_dst_desc());
      data_w_ = Reorderer(w_md_, data_pd->weights_desc());
      dx_ = Reorderer(data_pd->diff_src_desc(), x_md_);
      dx_desc_ = data_pd->diff_src_desc();
    }
    if (weights_pd) {
      weights_ = dnnl::primitive(*weights_pd);
      weights_x_ = Reorderer(x_md_, weights_pd->src_desc());
      weights_dy_ = Reorderer(y_md_, weights_pd->diff_dst_desc());
      dw_ = Reorderer(weights_pd->diff_weights_desc(), w_md_);
      dw_desc_ = weights_pd->diff_weights_desc();
      share_dy_ = data_pd && data_pd->diff_dst_desc() == weights_pd->diff_dst_desc();
    }
  }

  void run(KernelContext& ctx) override {
    const Tensor& dy = ctx.input(0);
    dnnl::memory dy_plain = bind(y_md_, dy);
    dnnl::memory dy_data;
    if (want_.dx) {
      Tensor& dx = ctx.output(0, DType::Float, x_shape_);
      // Converted layouts live in the scratch arena while this runs (dnnl_utils.h).
      dy_data = data_dy_(dy_plain);
      dnnl::memory w = data_w_(bind(w_md_, ctx.input(2)));
      dnnl::memory out = bind(x_md_, dx);
      dnnl::memory diff_src = dx_.needed() ? scratch_memory(dx_desc_) : out;
      execute(data_, {{DNNL_ARG_DIFF_DST, dy_data}, {DNNL_ARG_WEIGHTS, w}, {DNNL_ARG_DIFF_SRC, diff_src}});
      if (dx_.needed()) dx_(diff_src, out);
    }
    if (want_.dw && gemm_dw_) {
      gemm_dw_->run(ctx.input(1), dy, ctx.output(1, DType::Float, w_shape_));
    } else if (want_.dw) {
      Tensor& dw = ctx.output(1, DType::Float, w_shape_);
      dnnl::memory src = weights_x_(bind(x_md_, ctx.input(1)));
      dnnl::memory dy_w = share_dy_ && dy_data ? dy_data : weights_dy_(dy_plain);
      dnnl::memory out = bind(w_md_, dw);
      dnnl::memory diff_weights = dw_.needed() ? scratch_memory(dw_desc_) : out;
      execute(weights_, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DIFF_DST, dy_w}, {DNNL_ARG_DIFF_WEIGHTS, diff_weights}});
      if (dw_.needed()) dw_(diff_weights, out);
    }
    if (want_.db) {
      bias_grad_loop<float>(g_.n, g_.m, g_.out_size(), dy.data<float>(),
                            ctx.output(2, DType::Float, {g_.m}).data<float>());
    }
  }

 private:
  Geometry g_;
  Shape x_shape_, w_shape_;  // kept: a run allocates no shapes
  GradOutputs want_;
  bool share_dy_ = false;
  std::optional<WeightsGradGemm> gemm_dw_;
  dnnl::memory::desc x_md_, y_md_, w_md_, dx_desc_, dw_desc_;
  dnnl::primitive data_, weights_;
  Reorderer data_dy_, data_w_, dx_, weights_x_, weights_dy_, dw_;
};

GradOutputs grad_outputs(const Node& node) { return {node.has_output(0), node.has_output(1), node.has_output(2)}; }

void check_grad_inputs(const Node& node, const std::vector<InputInfo>& in, const Geometry& g) {
  if (in.size() < 3 || !in[0].present || !in[1].present || !in[2].present) fail(node, "needs inputs dY, X and W");
  if (in[0].dtype != in[1].dtype || in[2].dtype != in[1].dtype) fail(node, "dY, X and W have different element types");
  if (in[0].shape != g.out_shape())
    fail_shape(node, "dY " + shape_str(in[0].shape) + " does not match the output " + shape_str(g.out_shape()));
}

std::unique_ptr<Kernel> make_conv_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Geometry g = conv_geometry(node, in[1].shape, in[2].shape);
  check_grad_inputs(node, in, g);
  const GradOutputs want = grad_outputs(node);
  if (!dnnl_applicable(g, in[0].dtype) || g.k_size() == 0) return own_grad_kernel<false>(g, in[2].shape, want);
  const Shape& x = in[1].shape;
  const Shape wd = conv_dnnl_weights(g, in[2].shape);
  const auto type = compute_type(node);
  dnnl::algorithm alg = conv_algorithm(node, g, type);
  const auto hint = make_pd<dnnl::convolution_forward::primitive_desc>(
      alg, [&](dnnl::algorithm a) { return conv_forward_desc(g, x, wd, want.db, type, a); });
  std::optional<dnnl::convolution_backward_data::primitive_desc> data;
  std::optional<dnnl::convolution_backward_weights::primitive_desc> weights;
  if (want.dx)
    data.emplace(make_pd<dnnl::convolution_backward_data::primitive_desc>(
        alg,
        [&](dnnl::algorithm a) {
          return dnnl::convolution_backward_data::desc(a, any_desc(x), any_desc(wd, type), any_desc(g.out_shape(), type),
                                                       g.dnnl(g.s), g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(g.pe));
        },
        hint));
  std::optional<WeightsGradGemm> gemm_dw;
  const bool direct_only = node.attr_string(graph::kConvAlgorithmAttr, "auto") == "direct";
  if (want.dw && type == dnnl::memory::data_type::f32 && !direct_only && WeightsGradGemm::pays(g))
    gemm_dw.emplace(g);
  else if (want.dw)
    // No diff_bias here: bias_grad_loop sums dY in double, several times closer to float64
    // than oneDNN's single-precision sum (the model family parity tests).
    weights.emplace(make_pd<dnnl::convolution_backward_weights::primitive_desc>(
        alg,
        [&](dnnl::algorithm a) {
          return dnnl::convolution_backward_weights::desc(a, any_desc(x, type), any_desc(wd), any_desc(g.out_shape(), type),
                                                          g.dnnl(g.s), g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(g.pe));
        },
        hint));
  return std::make_unique<DnnlConvGradKernel>(g, in[2].shape, plain_desc(wd, DType::Float), want, data,
                                              weights, std::move(gemm_dw));
}

std::unique_ptr<Kernel> make_conv_transpose_grad(const Node& node, const std::vector<InputInfo>& in) {
  const Geometry g = conv_transpose_geometry(node, in[1].shape, in[2].shape);
  check_grad_inputs(node, in, g);
  const GradOutputs want = grad_outputs(node);
  if (!deconv_dnnl_ok(g, in[0].dtype) || g.k_size() == 0) return own_grad_kernel<true>(g, in[2].shape, want);
  const Shape& x = in[1].shape;
  Shape wd;
  const dnnl::memory::desc w_md = deconv_weights_desc(g, in[2].shape, wd);
  const Dims3 pe_r = deconv_right_pad(g);
  const auto type = compute_type(node);
  dnnl::deconvolution_forward::primitive_desc hint(deconv_forward_desc(g, x, wd, want.db, type), cpu_engine());
  std::optional<dnnl::deconvolution_backward_data::primitive_desc> data;
  std::optional<dnnl::deconvolution_backward_weights::primitive_desc> weights;
  const auto alg = dnnl::algorithm::deconvolution_direct;
  if (want.dx)
    data.emplace(dnnl::deconvolution_backward_data::desc(alg, any_desc(x), any_desc(wd, type),
                                                         any_desc(g.out_shape(), type),
                                                         g.dnnl(g.s), g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(pe_r)),
                 arena_scratchpad(), cpu_engine(), hint);
  if (want.dw) {
    // No diff_bias here: bias_grad_loop sums dY in double, several times closer to float64
    // than oneDNN's single-precision sum (the model family parity tests).
    dnnl::deconvolution_backward_weights::desc desc(alg, any_desc(x, type), any_desc(wd),
                                                   any_desc(g.out_shape(), type), g.dnnl(g.s),
                                                 g.dnnl(g.d, -1), g.dnnl(g.pb), g.dnnl(pe_r));
    weights.emplace(desc, arena_scratchpad(), cpu_engine(), hint);
  }
  return std::make_unique<DnnlConvGradKernel>(g, in[2].shape, w_md, want, data, weights);
}

// Y = conv(X, W) + B: one ConvGrad node gives dX, dW and dB; outputs nobody needs are left
// out of the node (empty names) so the kernel does not compute them.
template <bool Transposed>
void conv_gradient(GradientBuilder& b) {
  const bool dx = b.needs_grad(0), dw = b.needs_grad(1), db = b.node().has_input(2) && b.needs_grad(2);
  Attributes attrs = b.node().attributes;
  auto outs = b.op_n(Transposed ? "ConvTransposeGrad" : "ConvGrad", {b.GO(0), b.I(0), b.I(1)}, 3, attrs,
                     graph::kTrainingDomain);
  // GradientBuilder::op_n names every output; drop the unneeded ones from the node.
  graph::Node* n = outs[0]->producer;
  const bool keep[3] = {dx, dw, db};
  for (size_t i = 0; i < 3; ++i) {
    if (keep[i]) continue;
    n->outputs[i] = nullptr;
    outs[i]->producer = nullptr;
  }
  while (!n->outputs.empty() && !n->outputs.back()) n->outputs.pop_back();
  if (dx) b.GI(0, outs[0]);
  if (dw) b.GI(1, outs[1]);
  if (db) b.GI(2, outs[2]);
}
}  // namespace

void register_conv_ops(Registry& r) {
  const char* t = graph::kTrainingDomain;
  r.add({"", "Conv", 1, INT_MAX, make_conv, "oneDNN convolution", conv_gradient<false>});
  r.add({"", "ConvTranspose", 1, INT_MAX, make_conv_transpose, "oneDNN deconvolution", conv_gradient<true>});
  r.add({t, "ConvGrad", 1, INT_MAX, make_conv_grad, "oneDNN convolution backward"});
  r.add({t, "ConvTransposeGrad", 1, INT_MAX, make_conv_transpose_grad, "oneDNN deconvolution backward"});
}

}  // namespace onnxtrain::ops
