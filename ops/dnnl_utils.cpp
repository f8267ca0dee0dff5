#include "ops/dnnl_utils.h"

#include <chrono>
#include <string>

namespace onnxtrain::ops {

dnnl::engine& cpu_engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::stream& cpu_stream() {
  thread_local dnnl::stream stream(cpu_engine());
  return stream;
}

bool has_dnnl_type(DType dtype) {
  switch (dtype) {
    case DType::Float: case DType::Int32: case DType::Int8: case DType::UInt8:
    case DType::BFloat16: case DType::Float16:
      return true;
    default:
      return false;
  }
}

dnnl::memory::data_type dnnl_type(DType dtype) {
  using dt = dnnl::memory::data_type;
  switch (dtype) {
    case DType::Float: return dt::f32;
    case DType::Int32: return dt::s32;
    case DType::Int8: return dt::s8;
    case DType::UInt8: return dt::u8;
    case DType::BFloat16: return dt::bf16;
    case DType::Float16: return dt::f16;
    default: throw UnsupportedOp("oneDNN has no " + dtype_name(dtype) + " data type");
  }
}

dnnl::memory::dims dnnl_dims(const Shape& shape) {
  if (shape.empty()) return {1};
  return dnnl::memory::dims(shape.begin(), shape.end());
}

dnnl::memory::desc plain_desc(const Shape& shape, DType dtype) {
  dnnl::memory::dims dims = dnnl_dims(shape);
  dnnl::memory::dims strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) strides[i] = strides[i + 1] * dims[i + 1];
  return dnnl::memory::desc(dims, dnnl_type(dtype), strides);
}

dnnl::memory::desc strided_desc(const Shape& shape, DType dtype, const Shape& strides) {
  return dnnl::memory::desc(dnnl_dims(shape), dnnl_type(dtype),
                            dnnl::memory::dims(strides.begin(), strides.end()));
}

namespace {
thread_local MemoryBindings* current_bindings = nullptr;

// A new memory object (its C++ handle included) is oneDNN's allocation.
dnnl::memory new_memory(const dnnl::memory::desc& desc, void* data) {
  DnnlCallScope inside;
  return dnnl::memory(desc, cpu_engine(), data);
}

dnnl::memory bind_data(const dnnl::memory::desc& desc, void* data) {
  return current_bindings ? current_bindings->bind(desc, data) : new_memory(desc, data);
}

// The scratchpad of a primitive made with arena_scratchpad(), in the scratch arena; a null
// memory when it needs none (or oneDNN manages it).
dnnl::memory arena_scratchpad_memory(const dnnl::primitive& primitive) {
  const_dnnl_primitive_desc_t pd = nullptr;
  if (dnnl_primitive_get_primitive_desc(primitive.get(), &pd) != dnnl_success) return {};
  const dnnl_memory_desc_t* md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  if (!md || md->ndims == 0 || dnnl_memory_desc_get_size(md) == 0) return {};
  return scratch_memory(dnnl::memory::desc(*md));
}

void execute_args(const dnnl::primitive& primitive, const ExecArg* begin, const ExecArg* end) {
  constexpr size_t kMax = 32;
  const size_t n = static_cast<size_t>(end - begin);
  if (n >= kMax) throw BackendError("a oneDNN primitive with " + std::to_string(n) + " arguments (at most 31)");
  dnnl_exec_arg_t args[kMax];
  for (size_t i = 0; i < n; ++i) args[i] = {begin[i].arg, begin[i].memory.get()};
  const dnnl::memory scratchpad = arena_scratchpad_memory(primitive);
  const int count = static_cast<int>(n) + (scratchpad ? 1 : 0);
  if (scratchpad) args[n] = {DNNL_ARG_SCRATCHPAD, scratchpad.get()};
  DnnlCallScope inside;
  const dnnl_status_t status =
      dnnl_primitive_execute(primitive.get(), cpu_stream().get(), count, args);
  if (status != dnnl_success) throw dnnl::error(status, "could not execute a primitive");
  cpu_stream().wait();
}
}  // namespace

dnnl::memory bind(const dnnl::memory::desc& desc, const Tensor& tensor) {
  return bind_data(desc, const_cast<void*>(tensor.raw()));
}

dnnl::memory MemoryBindings::bind(const dnnl::memory::desc& desc, void* data) {
  if (next_ < memories_.size() && memories_[next_].get_desc() == desc) {
    DnnlCallScope inside;
    memories_[next_].set_data_handle(data);
  } else if (next_ < memories_.size()) {
    memories_[next_] = new_memory(desc, data);
  } else {
    memories_.push_back(new_memory(desc, data));
  }
  return memories_[next_++];
}

MemoryBindings::Scope::Scope(MemoryBindings& bindings) : previous_(current_bindings) {
  bindings.next_ = 0;
  current_bindings = &bindings;
}

MemoryBindings::Scope::~Scope() { current_bindings = previous_; }

thread_local int DnnlCallScope::depth = 0;

ExecArgs::ExecArgs(std::initializer_list<ExecArg> args) {
  for (const ExecArg& a : args) (*this)[a.arg] = a.memory;
}

dnnl::memory& ExecArgs::operator[](int arg) {
  for (size_t i = 0; i < size_; ++i)
    if (args_[i].arg == arg) return args_[i].memory;
  if (size_ == kCapacity) throw BackendError("more than 16 oneDNN execution arguments");
  args_[size_] = {arg, dnnl::memory()};
  return args_[size_++].memory;
}

void execute(const dnnl::primitive& primitive, std::initializer_list<ExecArg> args) {
  execute_args(primitive, args.begin(), args.end());
}

void execute(const dnnl::primitive& primitive, const ExecArgs& args) {
  execute_args(primitive, args.begin(), args.end());
}

dnnl::memory::data_type compute_type(const Node& node) {
  const std::string type = node.attr_string(graph::kComputeTypeAttr, "f32");
  if (type == "bf16") return dnnl::memory::data_type::bf16;
  if (type != "f32") fail(node, "unknown compute type '" + type + "'");
  return dnnl::memory::data_type::f32;
}

dnnl::memory::desc retyped(const dnnl::memory::desc& desc, dnnl::memory::data_type type) {
  dnnl::memory::desc out = desc;
  out.data.data_type = static_cast<dnnl_data_type_t>(type);
  return out;
}

std::string effective_cpu_isa_name() {
  using isa = dnnl::cpu_isa;
  switch (dnnl::get_effective_cpu_isa()) {
    case isa::sse41: return "sse41";
    case isa::avx: return "avx";
    case isa::avx2: return "avx2";
    case isa::avx2_vnni: return "avx2_vnni";
    case isa::avx512_mic: return "avx512_mic";
    case isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case isa::avx512_core: return "avx512_core";
    case isa::avx512_core_vnni: return "avx512_core_vnni";
    case isa::avx512_core_bf16: return "avx512_core_bf16";
    case isa::avx512_core_amx: return "avx512_core_amx";
    default: return "unknown (oneDNN code " + std::to_string(static_cast<int>(dnnl::get_effective_cpu_isa())) + ")";
  }
}

void require_bf16_cpu() {
  // oneDNN's ISA values are bit sets: each includes the bits of the sets it extends, and
  // AMX (avx512_core_amx) extends avx512_core_bf16.
  const auto have = static_cast<unsigned>(dnnl::get_effective_cpu_isa());
  const auto bf16 = static_cast<unsigned>(dnnl::cpu_isa::avx512_core_bf16);
  if ((have & bf16) != bf16)
    throw BackendError("--precision bf16 needs a CPU with AVX512-BF16 or AMX; this CPU's best oneDNN ISA is " +
                       effective_cpu_isa_name() + " (use --precision fp32)");
}

void execute(const dnnl::primitive& primitive, const std::unordered_map<int, dnnl::memory>& args) {
  if (dnnl::memory scratchpad = arena_scratchpad_memory(primitive)) {
    auto with_scratchpad = args;
    with_scratchpad[DNNL_ARG_SCRATCHPAD] = scratchpad;
    DnnlCallScope inside;
    primitive.execute(cpu_stream(), with_scratchpad);
    cpu_stream().wait();
    return;
  }
  DnnlCallScope inside;
  primitive.execute(cpu_stream(), args);
  cpu_stream().wait();
}

dnnl::primitive_attr arena_scratchpad() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

thread_local bool ReorderClock::enabled = false;
thread_local int64_t ReorderClock::ns = 0;

Reorderer::Reorderer(const dnnl::memory::desc& from, const dnnl::memory::desc& to)
    : needed_(from != to), to_(to) {
  if (needed_) reorder_ = dnnl::reorder(dnnl::reorder::primitive_desc(cpu_engine(), from, cpu_engine(), to, arena_scratchpad()));
}

void* ScratchArena::allocate(size_t bytes) {
  constexpr size_t kAlign = 64;
  bytes = (bytes + kAlign - 1) / kAlign * kAlign;
  if (chunks_.empty() || used_ + bytes > chunks_.back().size) {
    // Earlier allocations of this node stay where they are: a new, larger chunk.
    const size_t size = std::max(bytes, 2 * capacity());
    chunks_.push_back({std::make_unique_for_overwrite<std::byte[]>(size + kAlign), size});
    used_ = 0;
  }
  std::byte* base = chunks_.back().data.get();
  const auto misalign = reinterpret_cast<uintptr_t>(base) % kAlign;
  void* p = base + (misalign ? kAlign - misalign : 0) + used_;
  used_ += bytes;
  return p;
}

void ScratchArena::reset() {
  if (chunks_.size() > 1) {  // one chunk as large as the whole need so far
    const size_t total = capacity();
    chunks_.clear();
    chunks_.push_back({std::make_unique_for_overwrite<std::byte[]>(total + 64), total});
  }
  used_ = 0;
}

size_t ScratchArena::capacity() const {
  size_t total = 0;
  for (const auto& c : chunks_) total += c.size;
  return total;
}

ScratchArena& scratch_arena() {
  thread_local ScratchArena arena;
  return arena;
}

dnnl::memory scratch_memory(const dnnl::memory::desc& desc) {
  return bind_data(desc, scratch_arena().allocate(desc.get_size()));
}

dnnl::memory Reorderer::operator()(const dnnl::memory& src) const {
  if (!needed_) return src;
  dnnl::memory scratch = scratch_memory(to_);
  return (*this)(src, scratch);
}

dnnl::memory Reorderer::operator()(const dnnl::memory& src, dnnl::memory& scratch) const {
  if (!needed_) return src;
  if (!scratch || scratch.get_desc() != to_) {
    DnnlCallScope inside;
    scratch = dnnl::memory(to_, cpu_engine());
  }
  const bool timed = ReorderClock::enabled;
  const auto start = timed ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
  execute(reorder_, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, scratch}});
  if (timed)
    ReorderClock::ns += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start).count();
  return scratch;
}

}  // namespace onnxtrain::ops
