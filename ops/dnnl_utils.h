#pragma once
// The oneDNN idiom we wrap: one CPU engine, one stream, plain row-major memory descriptors
// over our tensors. Kernels build primitives in their constructors (plan time) and bind
// tensor pointers in run().
#include <oneapi/dnnl/dnnl.hpp>
#include <cstddef>
#include <initializer_list>
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
// Memory of `desc` over the tensor's data. Inside a kernel run by the executor the memory
// object is the one this call made on the kernel's previous run, repointed (MemoryBindings).
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

// The memory objects a kernel's bind() and scratch_memory() calls made on its last run, in
// call order. The executor keeps one per kernel and installs it (MemoryBindings::Scope)
// around run(): a call whose descriptor matches the previous run's at the same position
// gets that object with a new data handle, so a steady-state run creates no oneDNN memory
// objects. A kernel must not keep a bound memory object between runs.
class MemoryBindings {
 public:
  dnnl::memory bind(const dnnl::memory::desc& desc, void* data);
  class Scope {
   public:
    explicit Scope(MemoryBindings& bindings);
    ~Scope();
    Scope(const Scope&) = delete;
    Scope& operator=(const Scope&) = delete;

   private:
    MemoryBindings* previous_;
  };

 private:
  std::vector<dnnl::memory> memories_;
  size_t next_ = 0;
};

// Set (a depth) while control is inside a oneDNN call on this thread, so a heap-allocation
// counter can tell oneDNN's own allocations (its execution argument map, primitive
// internals) from ours (tests/reliability/alloc_count_test.cpp).
struct DnnlCallScope {
  static thread_local int depth;
  DnnlCallScope() noexcept { ++depth; }
  ~DnnlCallScope() { --depth; }
  DnnlCallScope(const DnnlCallScope&) = delete;
  DnnlCallScope& operator=(const DnnlCallScope&) = delete;
};

// One execution argument (DNNL_ARG_*, memory).
struct ExecArg {
  int arg;
  dnnl::memory memory;
};
// Execution arguments built up by a kernel without the heap (at most kCapacity).
class ExecArgs {
 public:
  static constexpr size_t kCapacity = 16;
  ExecArgs(std::initializer_list<ExecArg> args);
  // The argument's memory, added when absent.
  dnnl::memory& operator[](int arg);
  const ExecArg* begin() const { return args_; }
  const ExecArg* end() const { return args_ + size_; }
  size_t size() const { return size_; }

 private:
  ExecArg args_[kCapacity];
  size_t size_ = 0;
};

// Attributes every primitive is made with: its scratchpad comes from the scratch arena,
// which execute() passes it. oneDNN's library-managed scratchpad is one buffer per thread,
// as large as the largest any live primitive asked for, kept while one lives: a second
// peak beside the arena, which holds the largest node's converted layouts anyway. A new
// object per call: attributes are shared handles, and callers add post-ops to theirs.
dnnl::primitive_attr arena_scratchpad();

// Runs a primitive with its arguments on the shared stream and waits. The argument list
// forms go to oneDNN's C API from the stack; the map form (kept for kernels that build
// maps) allocates its nodes.
void execute(const dnnl::primitive& primitive, std::initializer_list<ExecArg> args);
void execute(const dnnl::primitive& primitive, const ExecArgs& args);
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
