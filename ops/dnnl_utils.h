#pragma once
// The oneDNN idiom we wrap: one CPU engine, one stream, plain row-major memory descriptors
// over our tensors. Kernels build primitives in their constructors (plan time) and bind
// tensor pointers in run().
#include <oneapi/dnnl/dnnl.hpp>
#include <cstddef>
#include <memory>
#include <string>
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

// Mixed precision (TrainingOptions::precision). The element type a node's oneDNN primitive
// reads its inputs in: bf16 when the session marked the node (graph::kComputeTypeAttr),
// f32 otherwise. Our tensors stay float32; Reorderers convert at the primitive's boundary.
dnnl::memory::data_type compute_type(const Node& node);
// `desc` with another element type, same dims and strides (a Reorderer between the two
// converts the elements only).
dnnl::memory::desc retyped(const dnnl::memory::desc& desc, dnnl::memory::data_type type);
// oneDNN's best instruction set on this CPU (ONEDNN_MAX_CPU_ISA lowers it), e.g. "avx512_core_bf16".
std::string effective_cpu_isa_name();
// Throws BackendError unless oneDNN has native bf16 kernels here (AVX512-BF16 or AMX).
void require_bf16_cpu();

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
