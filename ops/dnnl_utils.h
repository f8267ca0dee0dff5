#pragma once
// The oneDNN idiom we wrap: one CPU engine, one stream, plain row-major memory descriptors
// over our tensors. Kernels build primitives in their constructors (plan time) and bind
// tensor pointers in run().
#include <oneapi/dnnl/dnnl.hpp>
#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

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

// Buffers a kernel needs only while it runs (layouts converted for oneDNN): one arena per
// thread, emptied by the executor before each node runs, so a plan holds the largest single
// node's need instead of every kernel keeping its own buffers between steps (~490 MiB of
// resnet18's training step at batch 32 before this).
class ScratchArena {
 public:
  // 64-byte aligned, valid until the next reset().
  void* allocate(size_t bytes);
  // Forgets every allocation; keeps (one chunk of) the memory for the next node.
  void reset();
  size_t capacity() const;

 private:
  struct Chunk {
    std::unique_ptr<std::byte[]> data;
    size_t size = 0;
  };
  std::vector<Chunk> chunks_;
  size_t used_ = 0;  // in the last chunk
};
ScratchArena& scratch_arena();  // the calling thread's
// Memory of `desc` in the calling thread's scratch arena.
dnnl::memory scratch_memory(const dnnl::memory::desc& desc);

// Converts `src` (in `from` layout) into a tensor-backed `to` layout when they differ, or
// returns `src` itself. Used for oneDNN-preferred ("any") layouts of weights and sources.
class Reorderer {
 public:
  Reorderer() = default;
  Reorderer(const dnnl::memory::desc& from, const dnnl::memory::desc& to);
  bool needed() const { return needed_; }
  // Returns memory in the `to` layout; `scratch` keeps the converted buffer alive.
  dnnl::memory operator()(const dnnl::memory& src, dnnl::memory& scratch) const;
  // The same into the scratch arena: valid while the calling kernel runs.
  dnnl::memory operator()(const dnnl::memory& src) const;

 private:
  bool needed_ = false;
  dnnl::memory::desc to_;
  dnnl::reorder reorder_;
};

}  // namespace onnxtrain::ops
