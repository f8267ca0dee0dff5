#pragma once
// The oneDNN idiom we wrap: one CPU engine, one stream, plain row-major memory descriptors
// over our tensors. Kernels build primitives in their constructors (plan time) and bind
// tensor pointers in run().
#include <oneapi/dnnl/dnnl.hpp>
#include <unordered_map>

#include "ops/kernel.h"

namespace onnxtrain::ops {

dnnl::engine& cpu_engine();
dnnl::stream& cpu_stream();

bool has_dnnl_type(DType dtype);
dnnl::memory::data_type dnnl_type(DType dtype);
dnnl::memory::dims dnnl_dims(const Shape& shape);  // rank 0 becomes {1}
// Row-major descriptor (the layout of every Tensor).
dnnl::memory::desc plain_desc(const Shape& shape, DType dtype);
// Row-major descriptor with the given strides (for transposed views).
dnnl::memory::desc strided_desc(const Shape& shape, DType dtype, const Shape& strides);
dnnl::memory bind(const dnnl::memory::desc& desc, const Tensor& tensor);

// Runs a primitive with its arguments on the shared stream and waits.
void execute(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args);

// Time spent in Reorderer conversions on the calling thread, counted only while `enabled`
// (the executor's opt-in profiling turns it on, so a profile can show layout conversions
// apart from the kernels that make them; off, it costs one branch per conversion).
struct ReorderClock {
  static thread_local bool enabled;
  static thread_local int64_t ns;
};

// Converts `src` (in `from` layout) into a tensor-backed `to` layout when they differ, or
// returns `src` itself. Used for oneDNN-preferred ("any") layouts of weights and sources.
class Reorderer {
 public:
  Reorderer() = default;
  Reorderer(const dnnl::memory::desc& from, const dnnl::memory::desc& to);
  bool needed() const { return needed_; }
  // Returns memory in the `to` layout; `scratch` keeps the converted buffer alive.
  dnnl::memory operator()(const dnnl::memory& src, dnnl::memory& scratch) const;

 private:
  bool needed_ = false;
  dnnl::memory::desc to_;
  dnnl::reorder reorder_;
};

}  // namespace onnxtrain::ops
