// Optimizer updates: several parameter tensors per node, each updated independently.
//
// Layout shared by every op here (the ONNX ai.onnx.preview.training layout):
//   inputs  R (learning rate, float/double scalar), T (step, int64 scalar),
//           X_1..X_k (parameters), G_1..G_k (gradients), then per state s: S_s_1..S_s_k
//   outputs X'_1..X'_k, then per state s: S'_s_1..S'_s_k
// Within one tensor group j, X_j, G_j and its states share one shape and one dtype (float
// or double); groups may differ. Every element is updated independently, so the work is
// split into fixed-size chunks over all groups and run in parallel (many small tensors and
// a few large ones parallelise alike).
//
// ai.onnx.preview.training (opset 1): Adagrad, Momentum, Adam with the spec's semantics
// (docs: /work/shared/REFERENCE.md "ONNX training semantics"). T is 0-based there: T = 0
// disables Momentum's dampening and Adam's bias correction. Outputs are new tensors.
//
// ai.onnxtrain: SGD, Adam, AdamW, Adagrad, RMSprop with torch.optim's (1.13) update rules.
// Contract of these fused ops:
//   * T is the 1-based number of the step being taken (torch's state["step"] after its
//     increment): 1 on the first update. T < 1 is an error.
//   * At T = 1 the state inputs are *not read*: the kernel initialises them as torch does
//     (zeros; SGD's momentum buffer = the gradient; Adagrad's sum = initial_accumulator_value),
//     so the caller only has to allocate them. From T = 2 on they carry the previous step's
//     values.
//   * In place: the kernel overwrites the storage of X_j and of the state inputs, and its
//     outputs alias them (ctx.set_output(i, input)). Gradients are only read. The caller
//     guarantees that nothing else reads the old X or state values after this node runs
//     (typically X and states are initializers fed back every step). Written buffers must
//     not overlap each other (checked every run); a folded constant cannot be updated.
//   * R is read every run, so a schedule may change the learning rate per step without
//     rebuilding the kernel.
// Float attributes are widened to double through their shortest decimal form (0.999f ->
// 0.999), so coefficients such as 1 - beta2, beta2^t and 1 - lr * weight_decay are the ones
// torch computes from Python floats. Per-element arithmetic is in the tensor's type, in
// torch's operation order.
#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

namespace {

constexpr const char* kPreviewTrainingDomain = "ai.onnx.preview.training";
constexpr size_t kMaxStates = 3;
constexpr int64_t kChunk = 16384;

// ---- attributes ----------------------------------------------------------------------

double widen(float f) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f);
  double d = f;
  if (ec == std::errc()) std::from_chars(buf, end, d);
  return d;
}

// A numeric attribute given as float or int (ONNX text writes `momentum = 0` as an int).
double number_attr(const Node& node, const std::string& key, double fallback) {
  auto it = node.attributes.find(key);
  if (it == node.attributes.end()) return fallback;
  if (const float* f = std::get_if<float>(&it->second)) return widen(*f);
  if (const int64_t* i = std::get_if<int64_t>(&it->second)) return static_cast<double>(*i);
  fail(node, "attribute '" + key + "' must be a number");
}

double required_number_attr(const Node& node, const std::string& key) {
  if (!node.has_attr(key)) fail(node, "required attribute '" + key + "' is missing");
  return number_attr(node, key, 0.0);
}

bool bool_attr(const Node& node, const std::string& key) {
  int64_t v = node.attr_int(key, 0);
  if (v != 0 && v != 1) fail(node, "attribute '" + key + "' must be 0 or 1, got " + std::to_string(v));
  return v == 1;
}

void require(const Node& node, bool ok, const std::string& message) {
  if (!ok) fail(node, message);
}

std::string num_str(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

// ---- layout and validation -------------------------------------------------------------

struct Layout {
  size_t k = 0;       // tensors updated by the node
  size_t states = 0;  // state tensors per parameter
  bool in_place = false;
  std::vector<std::string> state_names;  // for messages
  size_t x(size_t j) const { return 2 + j; }
  size_t g(size_t j) const { return 2 + k + j; }
  size_t s(size_t st, size_t j) const { return 2 + (2 + st) * k + j; }
};

// Checks counts, scalars, dtypes and shapes at plan time.
Layout make_layout(const Node& node, const std::vector<InputInfo>& in, std::vector<std::string> state_names,
                   bool in_place) {
  Layout l;
  l.states = state_names.size();
  l.state_names = std::move(state_names);
  l.in_place = in_place;
  const size_t per = 2 + l.states;
  std::string expected = "R, T, X..., G...";
  for (const auto& s : l.state_names) expected += ", " + s + "...";
  if (in.size() < 2 + per || (in.size() - 2) % per != 0)
    fail(node, "expects inputs (" + expected + ") with the same number of tensors in each group, got " +
                   std::to_string(in.size()) + " inputs");
  l.k = (in.size() - 2) / per;
  if (node.outputs.size() != (1 + l.states) * l.k)
    fail(node, "updates " + std::to_string(l.k) + " tensors, so it has " + std::to_string((1 + l.states) * l.k) +
                   " outputs (X_new..." + std::string(l.states ? ", then the new states" : "") + "), got " +
                   std::to_string(node.outputs.size()));
  for (size_t i = 0; i < in.size(); ++i)
    if (!in[i].present) fail(node, "input " + std::to_string(i) + " is missing (no input is optional)");
  const InputInfo& r = in[0];
  if (r.dtype != DType::Float && r.dtype != DType::Double)
    fail(node, "the learning rate R must be float or double, got " + dtype_name(r.dtype));
  if (shape_numel(r.shape) != 1) fail_shape(node, "the learning rate R must be a scalar, got shape " + shape_str(r.shape));
  const InputInfo& t = in[1];
  if (t.dtype != DType::Int64) fail(node, "the step T must be int64, got " + dtype_name(t.dtype));
  if (shape_numel(t.shape) != 1) fail_shape(node, "the step T must be a scalar, got shape " + shape_str(t.shape));
  for (size_t j = 0; j < l.k; ++j) {
    const InputInfo& x = in[l.x(j)];
    if (x.dtype != DType::Float && x.dtype != DType::Double)
      fail(node, "X[" + std::to_string(j) + "] must be float or double, got " + dtype_name(x.dtype));
    auto check = [&](const InputInfo& o, const std::string& what) {
      if (o.dtype != x.dtype)
        fail(node, what + "[" + std::to_string(j) + "] is " + dtype_name(o.dtype) + " but X[" + std::to_string(j) +
                       "] is " + dtype_name(x.dtype));
      if (o.shape != x.shape)
        fail_shape(node, what + "[" + std::to_string(j) + "] has shape " + shape_str(o.shape) + " but X[" +
                             std::to_string(j) + "] has " + shape_str(x.shape));
    };
    check(in[l.g(j)], "G");
    for (size_t s = 0; s < l.states; ++s) check(in[l.s(s, j)], l.state_names[s]);
    if (in_place) {
      if (x.constant) fail(node, "X[" + std::to_string(j) + "] is a constant and cannot be updated in place");
      for (size_t s = 0; s < l.states; ++s)
        if (in[l.s(s, j)].constant)
          fail(node, l.state_names[s] + "[" + std::to_string(j) + "] is a constant and cannot be updated in place");
    }
  }
  return l;
}

// One tensor group's buffers for a run. Reads go through x/g/s, writes through xo/so; they
// are the same buffers for in-place ops (each element is read before it is written).
struct Group {
  DType dtype = DType::Undefined;
  int64_t n = 0;
  const void* x = nullptr;
  const void* g = nullptr;
  std::array<const void*, kMaxStates> s{};
  void* xo = nullptr;
  std::array<void*, kMaxStates> so{};
};

// One run's bindings. Each kernel keeps its own between runs, so a steady-state run
// allocates nothing (the vectors keep their capacity).
struct Batch {
  double lr = 0;
  int64_t step = 0;
  std::vector<Group> groups;
  std::vector<std::pair<const std::byte*, const std::byte*>> written;  // in-place ranges
  std::vector<std::pair<size_t, int64_t>> chunks;  // (group, begin) for for_each_chunk
};

double first_double(const Tensor& t) {
  if (t.dtype() == DType::Float && t.numel() > 0) return t.data<float>()[0];
  if (t.dtype() == DType::Double && t.numel() > 0) return t.data<double>()[0];
  return t.as_double().at(0);
}

int64_t first_int64(const Tensor& t) {
  if (t.dtype() == DType::Int64 && t.numel() > 0) return t.data<int64_t>()[0];
  return t.as_int64().at(0);
}

// Binds inputs and outputs for one run into `b`: outputs alias the inputs (in place) or are
// fresh.
void bind(KernelContext& ctx, const Layout& l, Batch& b) {
  const Node& node = ctx.node();
  b.lr = first_double(ctx.input(0));
  b.step = first_int64(ctx.input(1));
  b.groups.assign(l.k, Group{});
  std::vector<std::pair<const std::byte*, const std::byte*>>& written = b.written;
  written.clear();
  for (size_t j = 0; j < l.k; ++j) {
    Group& gr = b.groups[j];
    const Tensor& x = ctx.input(l.x(j));
    gr.dtype = x.dtype();
    gr.n = x.numel();
    gr.x = x.raw();
    gr.g = ctx.input(l.g(j)).raw();
    for (size_t s = 0; s < l.states; ++s) gr.s[s] = ctx.input(l.s(s, j)).raw();
    if (l.in_place) {
      auto alias = [&](size_t in_index, size_t out_index) -> void* {
        const Tensor& t = ctx.input(in_index);
        void* p = const_cast<void*>(t.raw());
        if (t.nbytes()) written.push_back({static_cast<const std::byte*>(p), static_cast<const std::byte*>(p) + t.nbytes()});
        ctx.set_output(out_index, t);  // shares the storage
        return p;
      };
      gr.xo = alias(l.x(j), j);
      for (size_t s = 0; s < l.states; ++s) gr.so[s] = alias(l.s(s, j), (1 + s) * l.k + j);
    } else {
      gr.xo = ctx.output(j, x.dtype(), x.shape()).raw();
      for (size_t s = 0; s < l.states; ++s) gr.so[s] = ctx.output((1 + s) * l.k + j, x.dtype(), x.shape()).raw();
    }
  }
  if (l.in_place) {
    std::sort(written.begin(), written.end());
    for (size_t i = 1; i < written.size(); ++i)
      if (written[i].first < written[i - 1].second)
        fail(node, "updates in place, but two of its parameter/state inputs share memory");
  }
}

// Calls f(T{}, group, begin, end) over chunks of every group, in parallel when there is
// more than one chunk.
template <typename F>
void for_each_chunk(Batch& batch, F&& f) {
  const std::vector<Group>& groups = batch.groups;
  std::vector<std::pair<size_t, int64_t>>& chunks = batch.chunks;
  chunks.clear();
  for (size_t j = 0; j < groups.size(); ++j)
    for (int64_t b = 0; b < groups[j].n; b += kChunk) chunks.push_back({j, b});
  parallel_for(static_cast<int64_t>(chunks.size()), [&](int64_t c) {
    const Group& gr = groups[chunks[c].first];
    const int64_t begin = chunks[c].second, end = std::min(begin + kChunk, gr.n);
    if (gr.dtype == DType::Float) f(float{}, gr, begin, end);
    else f(double{}, gr, begin, end);
  }, 2);
}

// Typed views of a group.
template <typename T>
struct Ptrs {
  const T* x;
  const T* g;
  std::array<const T*, kMaxStates> s;
  T* xo;
  std::array<T*, kMaxStates> so;
  explicit Ptrs(const Group& gr)
      : x(static_cast<const T*>(gr.x)), g(static_cast<const T*>(gr.g)), xo(static_cast<T*>(gr.xo)) {
    for (size_t i = 0; i < kMaxStates; ++i) {
      s[i] = static_cast<const T*>(gr.s[i]);
      so[i] = static_cast<T*>(gr.so[i]);
    }
  }
};

// Calls f(std::bool_constant<flag>...) for the given run-time flags, so that inside f each
// flag is a compile-time constant: the element loops then have no branches and no loads of
// unused states, which is what lets the compiler vectorize them (see `omp simd` below).
template <typename F>
void with_flags(F&& f) {
  f();
}
template <typename F, typename... Flags>
void with_flags(F&& f, bool flag, Flags... rest) {
  if (flag) with_flags([&](auto... c) { f(std::true_type{}, c...); }, rest...);
  else with_flags([&](auto... c) { f(std::false_type{}, c...); }, rest...);
}

// A state's value from the previous step, or `initial` on the first step (whose state
// inputs are not read: they are only allocated).
template <typename First, typename T>
T prev_or(First, T initial, const T* state, int64_t i) {
  if constexpr (First::value) return initial;
  else return state[i];
}

// ---- ai.onnx.preview.training ----------------------------------------------------------

// Adagrad: r = R/(1+T·decay_factor); g = norm·X + G; H' = H + g²; X' = X − r·g/(√H' + ε).
std::unique_ptr<Kernel> make_onnx_adagrad(const Node& node, const std::vector<InputInfo>& in) {
  const double decay = number_attr(node, "decay_factor", 0.0), eps = number_attr(node, "epsilon", 1e-6),
               norm = number_attr(node, "norm_coefficient", 0.0);
  Layout l = make_layout(node, in, {"H"}, false);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    const double r = b.lr / (1.0 + static_cast<double>(b.step) * decay);
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T r_ = static_cast<T>(r), norm_ = static_cast<T>(norm), eps_ = static_cast<T>(eps);
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const T x = p.x[i];
        const T g = norm_ * x + p.g[i];
        const T h = p.s[0][i] + g * g;
        p.so[0][i] = h;
        p.xo[i] = x - r_ * g / (std::sqrt(h) + eps_);
      }
    });
  });
}

// Momentum: g = norm·X + G; V' = α·V + (T>0 ? β : 1)·g;
// standard X' = X − R·V'; nesterov X' = X − R·(g + α·V').
std::unique_ptr<Kernel> make_onnx_momentum(const Node& node, const std::vector<InputInfo>& in) {
  const double alpha = required_number_attr(node, "alpha"), beta = required_number_attr(node, "beta"),
               norm = required_number_attr(node, "norm_coefficient");
  if (!node.has_attr("mode")) fail(node, "required attribute 'mode' is missing");
  const std::string mode = node.attr_string("mode", "");
  if (mode != "standard" && mode != "nesterov")
    fail(node, "attribute 'mode' must be \"standard\" or \"nesterov\", got \"" + mode + "\"");
  const bool nesterov = mode == "nesterov";
  Layout l = make_layout(node, in, {"V"}, false);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    const double beta_adjusted = b.step > 0 ? beta : 1.0;
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T r = static_cast<T>(b.lr), a = static_cast<T>(alpha), bt = static_cast<T>(beta_adjusted),
              norm_ = static_cast<T>(norm);
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const T x = p.x[i];
        const T g = norm_ * x + p.g[i];
        const T v = a * p.s[0][i] + bt * g;
        p.so[0][i] = v;
        p.xo[i] = nesterov ? x - r * (g + a * v) : x - r * v;
      }
    });
  });
}

// Adam: g = norm·X + G; V' = α·V + (1−α)·g; H' = β·H + (1−β)·g²;
// R' = T>0 ? R·√(1−β^T)/(1−α^T) : R; X' = (1 − post)·(X − R'·V'/(√H' + ε)).
std::unique_ptr<Kernel> make_onnx_adam(const Node& node, const std::vector<InputInfo>& in) {
  const double alpha = number_attr(node, "alpha", 0.9), beta = number_attr(node, "beta", 0.999),
               eps = number_attr(node, "epsilon", 1e-6), norm = number_attr(node, "norm_coefficient", 0.0),
               post = number_attr(node, "norm_coefficient_post", 0.0);
  Layout l = make_layout(node, in, {"V", "H"}, false);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    double r = b.lr;
    if (b.step > 0) {
      const double t = static_cast<double>(b.step);
      r = b.lr * std::sqrt(1.0 - std::pow(beta, t)) / (1.0 - std::pow(alpha, t));
    }
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T r_ = static_cast<T>(r), a = static_cast<T>(alpha), one_a = static_cast<T>(1.0 - alpha),
              bt = static_cast<T>(beta), one_b = static_cast<T>(1.0 - beta), eps_ = static_cast<T>(eps),
              norm_ = static_cast<T>(norm), keep = static_cast<T>(1.0 - post);
#pragma omp simd
      for (int64_t i = begin; i < end; ++i) {
        const T x = p.x[i];
        const T g = norm_ * x + p.g[i];
        const T v = a * p.s[0][i] + one_a * g;
        const T h = bt * p.s[1][i] + one_b * (g * g);
        p.so[0][i] = v;
        p.so[1][i] = h;
        p.xo[i] = keep * (x - r_ * (v / (std::sqrt(h) + eps_)));
      }
    });
  });
}

// ---- ai.onnxtrain: torch.optim (1.13) ------------------------------------------------------

void check_lr_step(const Node& node, const Batch& b) {
  if (!(b.lr >= 0.0)) fail(node, "invalid learning rate " + num_str(b.lr) + " (must be >= 0)");
  if (b.step < 1) fail(node, "step T must be >= 1 (the 1-based number of this update), got " + std::to_string(b.step));
}

void check_non_negative(const Node& node, const char* name, double v) {
  require(node, v >= 0.0, std::string("invalid ") + name + " " + num_str(v) + " (must be >= 0)");
}

// SGD (inputs R, T, X..., G..., [momentum_buffer...] when momentum != 0):
//   d = G (−G when maximize); d = d + weight_decay·X
//   momentum != 0: buf = T == 1 ? d : momentum·buf + (1−dampening)·d
//                  d = nesterov ? d + momentum·buf : buf
//   X = X − lr·d
std::unique_ptr<Kernel> make_sgd(const Node& node, const std::vector<InputInfo>& in) {
  const double momentum = number_attr(node, "momentum", 0.0), dampening = number_attr(node, "dampening", 0.0),
               wd = number_attr(node, "weight_decay", 0.0);
  const bool nesterov = bool_attr(node, "nesterov"), maximize = bool_attr(node, "maximize");
  check_non_negative(node, "momentum", momentum);
  check_non_negative(node, "weight_decay", wd);
  if (nesterov && (momentum <= 0.0 || dampening != 0.0))
    fail(node, "nesterov momentum requires a momentum > 0 and zero dampening");
  const bool has_buf = momentum != 0.0;
  Layout l = make_layout(node, in, has_buf ? std::vector<std::string>{"momentum_buffer"} : std::vector<std::string>{}, true);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    check_lr_step(ctx.node(), b);
    const bool first = b.step == 1;
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T wd_ = static_cast<T>(wd), m = static_cast<T>(momentum), damp = static_cast<T>(1.0 - dampening),
              neg_lr = static_cast<T>(-b.lr), sign = maximize ? T(-1) : T(1);
      with_flags([&](auto with_buf, auto first_step, auto with_wd) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) {
          const T x = p.x[i];
          T d = sign * p.g[i];
          if constexpr (with_wd) d = d + wd_ * x;
          if constexpr (with_buf) {
            T buf = d;
            if constexpr (!first_step) buf = p.s[0][i] * m + damp * d;
            p.so[0][i] = buf;
            d = nesterov ? d + m * buf : buf;
          }
          p.xo[i] = x + neg_lr * d;
        }
      }, has_buf, first, wd != 0.0);
    });
  });
}

// Adam / AdamW (inputs R, T, X..., G..., exp_avg..., exp_avg_sq..., [max_exp_avg_sq...] when
// amsgrad):
//   g = G (−G when maximize)
//   Adam: g = g + weight_decay·X          AdamW: X = X·(1 − lr·weight_decay)
//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²   (m = v = vmax = 0 before step 1)
//   amsgrad: vmax = max(vmax, v), v̂ = vmax; otherwise v̂ = v
//   X = X − (lr/(1−β1^T))·m / (√v̂/√(1−β2^T) + eps)
std::unique_ptr<Kernel> make_adam(const Node& node, const std::vector<InputInfo>& in, bool decoupled) {
  const double beta1 = number_attr(node, "beta1", 0.9), beta2 = number_attr(node, "beta2", 0.999),
               eps = number_attr(node, "eps", 1e-8), wd = number_attr(node, "weight_decay", decoupled ? 1e-2 : 0.0);
  const bool amsgrad = bool_attr(node, "amsgrad"), maximize = bool_attr(node, "maximize");
  check_non_negative(node, "eps", eps);
  require(node, beta1 >= 0.0 && beta1 < 1.0, "invalid beta1 " + num_str(beta1) + " (must be in [0, 1))");
  require(node, beta2 >= 0.0 && beta2 < 1.0, "invalid beta2 " + num_str(beta2) + " (must be in [0, 1))");
  check_non_negative(node, "weight_decay", wd);
  std::vector<std::string> states{"exp_avg", "exp_avg_sq"};
  if (amsgrad) states.push_back("max_exp_avg_sq");
  Layout l = make_layout(node, in, states, true);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    check_lr_step(ctx.node(), b);
    const bool first = b.step == 1;
    const double t = static_cast<double>(b.step);
    const double step_size = b.lr / (1.0 - std::pow(beta1, t));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(beta2, t));
    const double decay = decoupled ? 1.0 - b.lr * wd : 1.0;  // x·1 is x: no branch in the loop
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T b1 = static_cast<T>(beta1), one_b1 = static_cast<T>(1.0 - beta1), b2 = static_cast<T>(beta2),
              one_b2 = static_cast<T>(1.0 - beta2), eps_ = static_cast<T>(eps), wd_ = static_cast<T>(wd),
              decay_ = static_cast<T>(decay), neg_step = static_cast<T>(-step_size), bc2 = static_cast<T>(bc2_sqrt),
              sign = maximize ? T(-1) : T(1);
      with_flags([&](auto first_step, auto with_max, auto with_wd) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) {
          const T x = p.x[i] * decay_;
          T g = sign * p.g[i];
          if constexpr (with_wd) g = g + wd_ * p.x[i];
          const T m = prev_or(first_step, T(0), p.s[0], i) * b1 + one_b1 * g;
          const T v = prev_or(first_step, T(0), p.s[1], i) * b2 + one_b2 * g * g;
          p.so[0][i] = m;
          p.so[1][i] = v;
          T vhat = v;
          if constexpr (with_max) {
            if constexpr (!first_step) vhat = std::max(p.s[2][i], v);
            p.so[2][i] = vhat;
          }
          const T denom = std::sqrt(vhat) / bc2 + eps_;
          p.xo[i] = x + neg_step * m / denom;
        }
      }, first, amsgrad, !decoupled && wd != 0.0);
    });
  });
}

// Adagrad (inputs R, T, X..., G..., sum...):
//   g = G (−G when maximize); g = g + weight_decay·X
//   clr = lr / (1 + (T−1)·lr_decay)
//   sum = sum + g²   (sum = initial_accumulator_value before step 1)
//   X = X − clr·g / (√sum + eps)
std::unique_ptr<Kernel> make_adagrad(const Node& node, const std::vector<InputInfo>& in) {
  const double lr_decay = number_attr(node, "lr_decay", 0.0), wd = number_attr(node, "weight_decay", 0.0),
               init = number_attr(node, "initial_accumulator_value", 0.0), eps = number_attr(node, "eps", 1e-10);
  const bool maximize = bool_attr(node, "maximize");
  check_non_negative(node, "lr_decay", lr_decay);
  check_non_negative(node, "weight_decay", wd);
  check_non_negative(node, "initial_accumulator_value", init);
  check_non_negative(node, "eps", eps);
  Layout l = make_layout(node, in, {"sum"}, true);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    check_lr_step(ctx.node(), b);
    const bool first = b.step == 1;
    const double clr = b.lr / (1.0 + static_cast<double>(b.step - 1) * lr_decay);
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T wd_ = static_cast<T>(wd), init_ = static_cast<T>(init), eps_ = static_cast<T>(eps),
              neg_clr = static_cast<T>(-clr), sign = maximize ? T(-1) : T(1);
      with_flags([&](auto first_step, auto with_wd) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) {
          const T x = p.x[i];
          T g = sign * p.g[i];
          if constexpr (with_wd) g = g + wd_ * x;
          const T sum = prev_or(first_step, init_, p.s[0], i) + g * g;
          p.so[0][i] = sum;
          p.xo[i] = x + neg_clr * g / (std::sqrt(sum) + eps_);
        }
      }, first, wd != 0.0);
    });
  });
}

// RMSprop (inputs R, T, X..., G..., square_avg..., [grad_avg...] when centered,
// [momentum_buffer...] when momentum > 0):
//   g = G (−G when maximize); g = g + weight_decay·X
//   sq = α·sq + (1−α)·g²                      (all states 0 before step 1)
//   centered: ga = α·ga + (1−α)·g; avg = √(sq − ga²) + eps;  otherwise avg = √sq + eps
//   momentum > 0: buf = momentum·buf + g/avg; X = X − lr·buf;  otherwise X = X − lr·g/avg
std::unique_ptr<Kernel> make_rmsprop(const Node& node, const std::vector<InputInfo>& in) {
  const double alpha = number_attr(node, "alpha", 0.99), eps = number_attr(node, "eps", 1e-8),
               wd = number_attr(node, "weight_decay", 0.0), momentum = number_attr(node, "momentum", 0.0);
  const bool centered = bool_attr(node, "centered"), maximize = bool_attr(node, "maximize");
  check_non_negative(node, "eps", eps);
  check_non_negative(node, "momentum", momentum);
  check_non_negative(node, "weight_decay", wd);
  check_non_negative(node, "alpha", alpha);
  std::vector<std::string> states{"square_avg"};
  if (centered) states.push_back("grad_avg");
  const bool has_buf = momentum > 0.0;
  if (has_buf) states.push_back("momentum_buffer");
  const size_t ga_index = 1, buf_index = centered ? 2 : 1;
  Layout l = make_layout(node, in, states, true);
  return make_function_kernel([=, b = Batch{}](KernelContext& ctx) mutable {
    bind(ctx, l, b);
    check_lr_step(ctx.node(), b);
    const bool first = b.step == 1;
    for_each_chunk(b, [&](auto tag, const Group& gr, int64_t begin, int64_t end) {
      using T = decltype(tag);
      Ptrs<T> p(gr);
      const T a = static_cast<T>(alpha), one_a = static_cast<T>(1.0 - alpha), eps_ = static_cast<T>(eps),
              wd_ = static_cast<T>(wd), m = static_cast<T>(momentum), neg_lr = static_cast<T>(-b.lr),
              sign = maximize ? T(-1) : T(1);
      with_flags([&](auto first_step, auto with_ga, auto with_buf, auto with_wd) {
#pragma omp simd
        for (int64_t i = begin; i < end; ++i) {
          const T x = p.x[i];
          T g = sign * p.g[i];
          if constexpr (with_wd) g = g + wd_ * x;
          const T sq = prev_or(first_step, T(0), p.s[0], i) * a + one_a * g * g;
          p.so[0][i] = sq;
          T avg;
          if constexpr (with_ga) {
            const T ga = prev_or(first_step, T(0), p.s[ga_index], i) * a + one_a * g;
            p.so[ga_index][i] = ga;
            avg = std::sqrt(sq + T(-1) * ga * ga);
          } else {
            avg = std::sqrt(sq);
          }
          avg = avg + eps_;
          if constexpr (with_buf) {
            const T buf = prev_or(first_step, T(0), p.s[buf_index], i) * m + g / avg;
            p.so[buf_index][i] = buf;
            p.xo[i] = x + neg_lr * buf;
          } else {
            p.xo[i] = x + neg_lr * g / avg;
          }
        }
      }, first, centered, has_buf, wd != 0.0);
    });
  });
}

}  // namespace

void register_optimizer_ops(Registry& r) {
  const char* p = kPreviewTrainingDomain;
  r.add({p, "Adagrad", 1, INT_MAX, make_onnx_adagrad, "own", {}, {}, true});
  r.add({p, "Momentum", 1, INT_MAX, make_onnx_momentum, "own", {}, {}, true});
  r.add({p, "Adam", 1, INT_MAX, make_onnx_adam, "own", {}, {}, true});
  const char* t = graph::kTrainingDomain;
  r.add({t, "SGD", 1, INT_MAX, make_sgd, "own", {}, {}, true});
  r.add({t, "Adam", 1, INT_MAX, [](const Node& n, const std::vector<InputInfo>& in) { return make_adam(n, in, false); },
         "own", {}, {}, true});
  r.add({t, "AdamW", 1, INT_MAX, [](const Node& n, const std::vector<InputInfo>& in) { return make_adam(n, in, true); },
         "own", {}, {}, true});
  r.add({t, "Adagrad", 1, INT_MAX, make_adagrad, "own", {}, {}, true});
  r.add({t, "RMSprop", 1, INT_MAX, make_rmsprop, "own", {}, {}, true});
}

}  // namespace onnxtrain::ops
