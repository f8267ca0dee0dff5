#pragma once
// The contract between the executor and an operator's kernel. A kernel object is built at
// plan time for one node and one signature of input dtypes and shapes (so it can hold
// oneDNN primitives); it is then run many times.
#include <functional>
#include <memory>
#include <initializer_list>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "graph/ir.h"
#include "onnxtrain/errors.h"
#include "onnxtrain/tensor.h"

namespace onnxtrain::ops {

using graph::Node;

// What the kernel factory knows about an input when the kernel is built.
struct InputInfo {
  bool present = false;
  DType dtype = DType::Undefined;
  Shape shape;
  const Tensor* constant = nullptr;  // set when the input is an initializer or folded constant
};

// Provides output storage; the executor backs it with a memory pool.
class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual Tensor allocate(DType dtype, const Shape& shape) = 0;
  // The same into an existing tensor object, reusing its shape's capacity (the executor
  // keeps one per step output, so a steady-state step allocates nothing here).
  virtual void allocate_into(Tensor& out, DType dtype, std::span<const int64_t> shape) {
    out = allocate(dtype, Shape(shape.begin(), shape.end()));
  }
};

// Sums across the processes of a data-parallel job, for kernels whose statistics span the
// whole global batch (synchronized BatchNormalization). Every process runs the same plan, so
// the calls line up.
class Collective {
 public:
  virtual ~Collective() = default;
  virtual void allreduce_sum(double* values, int64_t count) = 0;
};

class KernelContext {
 public:
  // `inputs` and `outputs` belong to the caller (the executor's plan) and outlive the context.
  KernelContext(const Node& node, std::span<const Tensor* const> inputs, std::vector<Tensor>& outputs,
                Allocator& allocator, std::mt19937_64& rng)
      : node_(node), inputs_(inputs), outputs_(outputs), allocator_(allocator), rng_(rng) {}

  const Node& node() const { return node_; }
  size_t num_inputs() const { return inputs_.size(); }
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i] != nullptr; }
  const Tensor& input(size_t i) const;
  size_t num_outputs() const { return outputs_.size(); }
  bool wants_output(size_t i) const { return node_.has_output(i); }
  // Allocates output i (uninitialised contents from the pool).
  Tensor& output(size_t i, DType dtype, std::span<const int64_t> shape);
  Tensor& output(size_t i, DType dtype, const Shape& shape) { return output(i, dtype, std::span<const int64_t>(shape)); }
  Tensor& output(size_t i, DType dtype, std::initializer_list<int64_t> shape) {
    return output(i, dtype, std::span<const int64_t>(shape.begin(), shape.size()));
  }
  // Makes output i share storage with an existing tensor (views: Reshape, Identity, ...).
  void set_output(size_t i, const Tensor& tensor);
  void set_output(size_t i, Tensor&& tensor);
  // The same with another shape of the same element count, without allocating a Tensor.
  void set_output_view(size_t i, const Tensor& source, std::span<const int64_t> shape);
  std::mt19937_64& rng() { return rng_; }
  // Set when the run is one process of a job whose batch statistics are global; null
  // otherwise.
  Collective* collective() const { return collective_; }
  void set_collective(Collective* c) { collective_ = c; }

 private:
  const Node& node_;
  std::span<const Tensor* const> inputs_;
  std::vector<Tensor>& outputs_;
  Allocator& allocator_;
  std::mt19937_64& rng_;
  Collective* collective_ = nullptr;
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(KernelContext& ctx) = 0;
};

// A kernel that is just a function of the context (for ops without plan-time state).
template <typename F>
class FunctionKernel final : public Kernel {
 public:
  explicit FunctionKernel(F f) : f_(std::move(f)) {}
  void run(KernelContext& ctx) override { f_(ctx); }

 private:
  F f_;
};

template <typename F>
std::unique_ptr<Kernel> make_function_kernel(F f) {
  return std::make_unique<FunctionKernel<F>>(std::move(f));
}

using KernelFactory =
    std::function<std::unique_ptr<Kernel>(const Node& node, const std::vector<InputInfo>& inputs)>;

// Throws a ShapeError/ModelError naming the node.
[[noreturn]] void fail(const Node& node, const std::string& message);
[[noreturn]] void fail_shape(const Node& node, const std::string& message);

}  // namespace onnxtrain::ops
