// Einsum on batched matmuls (plan_batched_matmul in matmul.cpp: oneDNN matmul for float32,
// own loops otherwise) and strided gather-sums, all planned at plan time; its gradient rule
// rewrites the equation per operand.
#include <algorithm>
#include <cctype>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <variant>

#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// matmul.cpp
std::function<void(const Tensor&, const Tensor&, const Tensor&)> plan_batched_matmul(DType dtype, int64_t batch,
                                                                                      int64_t m, int64_t k, int64_t n,
                                                                                      const Node& node);

namespace {

constexpr int kMaxEllipsisDims = 64;
constexpr int kMaxLabels = 128 + kMaxEllipsisDims;  // character codes, then ellipsis dims

// Integer sums wrap like numpy's (64-bit unsigned arithmetic gives the same low bits).
template <typename T>
using Acc = std::conditional_t<std::is_integral_v<T>, uint64_t, T>;

// Einsum: each operand is first reduced to distinct labels (diagonals taken, labels nobody
// else uses summed out), then operands are contracted left to right as batched matmuls
// [batch, left, contracted] x [batch, contracted, right]; a final pass sums and permutes into
// the output order. All of it is planned at plan time; run() only executes the steps.

// out[i] = sum over r of in[offset(i) + offset(r)]. One strided pass covers diagonals (a
// repeated label's strides added up), transposes and sums over labels.
struct GatherStep {
  int src = 0, dst = 0;  // slots
  Shape shape, strides;
  Shape red_shape, red_strides;
};

struct ContractStep {
  int a = 0, b = 0, dst = 0;  // slots holding [B, M, K], [B, K, N] -> [B, M, N]
  int64_t batch = 1, m = 1, k = 1, n = 1;
  std::function<void(const Tensor&, const Tensor&, const Tensor&)> run;  // plan_batched_matmul
};

template <typename T>
void gather_sum(const T* in, const GatherStep& g, T* out) {
  using A = std::conditional_t<std::is_same_v<T, float>, double, Acc<T>>;
  const int rank = static_cast<int>(g.shape.size());
  const int64_t inner = rank ? g.shape.back() : 1;
  const int64_t inner_stride = rank ? g.strides.back() : 0;
  const int64_t outer = inner ? shape_numel(g.shape) / inner : 0;
  const int64_t reds = shape_numel(g.red_shape);
  const int red_rank = static_cast<int>(g.red_shape.size());
  const int64_t grain = std::max<int64_t>(1, 32768 / std::max<int64_t>(1, inner * reds));
  parallel_for(outer, [&](int64_t o) {
    int64_t base = 0, rest = o;
    for (int d = rank - 2; d >= 0; --d) {
      base += (rest % g.shape[d]) * g.strides[d];
      rest /= g.shape[d];
    }
    T* dst = out + o * inner;
    if (reds == 1) {
      for (int64_t j = 0; j < inner; ++j) dst[j] = in[base + j * inner_stride];
      return;
    }
    int64_t idx[kMaxLabels] = {};
    for (int64_t j = 0; j < inner; ++j) {
      const T* src = in + base + j * inner_stride;
      A acc{};
      int64_t off = 0;
      for (int64_t r = 0; r < reds; ++r) {
        acc += static_cast<A>(src[off]);
        for (int d = red_rank - 1; d >= 0; --d) {
          if (++idx[d] < g.red_shape[d]) {
            off += g.red_strides[d];
            break;
          }
          off -= (g.red_shape[d] - 1) * g.red_strides[d];
          idx[d] = 0;
        }
      }
      dst[j] = static_cast<T>(acc);
    }
  }, grain);
}

class EinsumKernel final : public Kernel {
 public:
  EinsumKernel(const Node& node, const std::vector<InputInfo>& in);
  void run(KernelContext& ctx) override;

 private:
  struct Operand {
    std::vector<int> labels;
    Shape shape;
    int slot = 0;
  };

  int new_slot(const Shape& shape) {
    scratch_shapes_.push_back(shape);
    return static_cast<int>(inputs_ + scratch_shapes_.size() - 1);
  }
  // Plans a gather of `x` into `labels` (each label of x not listed is summed out).
  Operand gather(const Operand& x, const std::vector<int>& labels);

  size_t inputs_ = 0;
  DType dtype_ = DType::Undefined;
  Shape out_shape_;
  std::vector<int64_t> size_;  // per label
  std::vector<Shape> scratch_shapes_;
  std::vector<std::variant<GatherStep, ContractStep>> steps_;
  std::vector<Tensor> scratch_;
};

EinsumKernel::Operand EinsumKernel::gather(const Operand& x, const std::vector<int>& labels) {
  GatherStep g;
  g.src = x.slot;
  const Shape strides = strides_of(x.shape);
  std::vector<int64_t> label_stride(size_.size(), 0);
  std::vector<bool> listed(size_.size(), false);
  for (size_t i = 0; i < x.labels.size(); ++i)
    if (x.shape[i] != 1) label_stride[x.labels[i]] += strides[i];  // size-1 dims broadcast
  for (int l : labels) {
    listed[l] = true;
    g.shape.push_back(size_[l]);
    g.strides.push_back(label_stride[l]);
  }
  std::vector<bool> seen(size_.size(), false);
  for (size_t i = 0; i < x.labels.size(); ++i) {
    const int l = x.labels[i];
    if (listed[l] || seen[l] || x.shape[i] == 1) continue;
    seen[l] = true;
    g.red_shape.push_back(x.shape[i]);
    g.red_strides.push_back(label_stride[l]);
  }
  Operand out{labels, g.shape, x.slot};
  if (labels == x.labels && g.shape == x.shape) return out;  // already in that form
  out.slot = g.dst = new_slot(g.shape);
  steps_.push_back(std::move(g));
  return out;
}

EinsumKernel::EinsumKernel(const Node& node, const std::vector<InputInfo>& in) : inputs_(in.size()) {
  std::string eq;
  for (char ch : node.attr_string("equation", "")) if (ch != ' ') eq += ch;
  if (in.empty()) fail(node, "needs at least one input");
  dtype_ = in[0].dtype;
  for (const auto& i : in)
    if (i.dtype != dtype_) fail(node, "inputs have different element types");
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::string> terms(1);
  for (char ch : lhs) {
    if (ch == ',') terms.emplace_back();
    else terms.back().push_back(ch);
  }
  if (terms.size() != in.size())
    fail(node, "equation '" + eq + "' has " + std::to_string(terms.size()) + " operand terms for " + std::to_string(in.size()) + " inputs");

  // Letters keep their character code as label; ellipsis dims get 128 + i, right-aligned.
  auto split = [&](const std::string& term, std::vector<int>& letters, int& ellipsis_at) {
    ellipsis_at = -1;
    for (size_t i = 0; i < term.size(); ++i) {
      const char ch = term[i];
      if (std::isalpha(static_cast<unsigned char>(ch))) {
        letters.push_back(ch);
      } else if (term.compare(i, 3, "...") == 0 && ellipsis_at < 0) {
        ellipsis_at = static_cast<int>(letters.size());
        i += 2;
      } else {
        fail(node, "invalid equation '" + eq + "' (term '" + term + "')");
      }
    }
  };
  std::vector<std::vector<int>> letters(in.size());
  std::vector<int> ellipsis_at(in.size());
  int max_ell = 0;
  for (size_t t = 0; t < in.size(); ++t) {
    split(terms[t], letters[t], ellipsis_at[t]);
    const int64_t rank = static_cast<int64_t>(in[t].shape.size()), nl = static_cast<int64_t>(letters[t].size());
    if (ellipsis_at[t] < 0 ? rank != nl : rank < nl)
      fail_shape(node, "term '" + terms[t] + "' does not match input " + std::to_string(t) + " of shape " + shape_str(in[t].shape));
    max_ell = std::max<int>(max_ell, static_cast<int>(rank - nl));
  }
  if (max_ell > kMaxEllipsisDims) fail(node, "too many ellipsis dimensions");
  size_.assign(128 + max_ell, -1);  // -1: label not used
  std::vector<int> count(size_.size(), 0);
  std::vector<Operand> ops(in.size());
  for (size_t t = 0; t < in.size(); ++t) {
    Operand& op = ops[t];
    op.shape = in[t].shape;
    op.slot = static_cast<int>(t);
    const int ell = static_cast<int>(op.shape.size() - letters[t].size());
    op.labels = letters[t];
    if (ellipsis_at[t] >= 0) {
      std::vector<int> e;
      for (int i = 0; i < ell; ++i) e.push_back(128 + max_ell - ell + i);
      op.labels.insert(op.labels.begin() + ellipsis_at[t], e.begin(), e.end());
    }
    for (size_t i = 0; i < op.labels.size(); ++i) {
      const int l = op.labels[i];
      const int64_t d = op.shape[i];
      ++count[l];
      for (size_t j = 0; j < i; ++j)
        if (op.labels[j] == l && op.shape[j] != d) fail_shape(node, "repeated label in term '" + terms[t] + "' has different sizes");
      if (size_[l] < 0 || size_[l] == 1) size_[l] = d;
      else if (d != size_[l] && d != 1)
        fail_shape(node, "label sizes " + std::to_string(size_[l]) + " and " + std::to_string(d) + " cannot be broadcast in '" + eq + "'");
    }
  }
  // Output labels: explicit, or the ellipsis dims followed by letters used once, sorted.
  std::vector<int> out_labels;
  if (arrow != std::string::npos) {
    std::vector<int> out_letters;
    int out_ell = -1;
    split(eq.substr(arrow + 2), out_letters, out_ell);
    out_labels = out_letters;
    if (out_ell >= 0) {
      std::vector<int> e;
      for (int i = 0; i < max_ell; ++i) e.push_back(128 + i);
      out_labels.insert(out_labels.begin() + out_ell, e.begin(), e.end());
    }
    for (size_t i = 0; i < out_labels.size(); ++i) {
      if (count[out_labels[i]] == 0) fail(node, "output label of '" + eq + "' does not occur in any input");
      for (size_t j = 0; j < i; ++j)
        if (out_labels[j] == out_labels[i]) fail(node, "output of '" + eq + "' repeats a label");
    }
  } else {
    for (int i = 0; i < max_ell; ++i) out_labels.push_back(128 + i);
    for (int l = 0; l < 128; ++l)
      if (count[l] == 1) out_labels.push_back(l);
  }
  for (int l : out_labels) out_shape_.push_back(size_[l]);

  // Where each label still occurs (an operand's size-1 dim broadcast against a larger one
  // does not count: it is dropped by the gather).
  auto occurs = [&](const Operand& op, int l) {
    for (size_t i = 0; i < op.labels.size(); ++i)
      if (op.labels[i] == l && (op.shape[i] == size_[l])) return true;
    return false;
  };
  auto in_output = [&](int l) { return std::find(out_labels.begin(), out_labels.end(), l) != out_labels.end(); };
  for (size_t t = 0; t < ops.size(); ++t) {
    std::vector<int> keep;
    for (size_t i = 0; i < ops[t].labels.size(); ++i) {
      const int l = ops[t].labels[i];
      if (std::find(keep.begin(), keep.end(), l) != keep.end() || !occurs(ops[t], l)) continue;
      bool used = in_output(l);
      for (size_t u = 0; u < ops.size() && !used; ++u) used = u != t && occurs(ops[u], l);
      if (used) keep.push_back(l);
    }
    ops[t] = gather(ops[t], keep);
  }
  Operand cur = ops[0];
  for (size_t t = 1; t < ops.size(); ++t) {
    const Operand& y = ops[t];
    auto needed = [&](int l) {
      if (in_output(l)) return true;
      for (size_t u = t + 1; u < ops.size(); ++u)
        if (occurs(ops[u], l)) return true;
      return false;
    };
    auto has = [](const Operand& o, int l) { return std::find(o.labels.begin(), o.labels.end(), l) != o.labels.end(); };
    std::vector<int> batch, left, contracted, right;
    for (int l : cur.labels) {
      if (has(y, l)) (needed(l) ? batch : contracted).push_back(l);
      else if (needed(l)) left.push_back(l);
    }
    for (int l : y.labels)
      if (!has(cur, l) && needed(l)) right.push_back(l);
    auto cat = [](std::vector<int> a, const std::vector<int>& b, const std::vector<int>& c) {
      a.insert(a.end(), b.begin(), b.end());
      a.insert(a.end(), c.begin(), c.end());
      return a;
    };
    auto prod = [&](const std::vector<int>& ls) {
      int64_t p = 1;
      for (int l : ls) p *= size_[l];
      return p;
    };
    const Operand a = gather(cur, cat(batch, left, contracted));
    const Operand b = gather(y, cat(batch, contracted, right));
    ContractStep c;
    c.a = a.slot;
    c.b = b.slot;
    c.batch = prod(batch);
    c.m = prod(left);
    c.k = prod(contracted);
    c.n = prod(right);
    cur.labels = cat(batch, left, right);
    cur.shape.clear();
    for (int l : cur.labels) cur.shape.push_back(size_[l]);
    cur.slot = c.dst = new_slot(cur.shape);
    c.run = plan_batched_matmul(dtype_, c.batch, c.m, c.k, c.n, node);
    steps_.push_back(std::move(c));
  }
  const size_t before = steps_.size();
  cur = gather(cur, out_labels);
  if (steps_.size() == before && cur.slot >= static_cast<int>(inputs_)) {
    // The last step already produces the output layout: let it write the output directly.
    const int last = cur.slot;
    scratch_shapes_.pop_back();
    for (auto& s : steps_) std::visit([&](auto& st) { if (st.dst == last) st.dst = -1; }, s);
  } else if (steps_.size() == before) {
    GatherStep copy;  // the output is an input unchanged
    copy.src = cur.slot;
    copy.dst = -1;
    copy.shape = cur.shape;
    copy.strides = strides_of(cur.shape);
    steps_.push_back(copy);
  } else {
    std::get<GatherStep>(steps_.back()).dst = -1;
    scratch_shapes_.pop_back();
  }
  for (const auto& s : scratch_shapes_) scratch_.emplace_back(dtype_, s);
}

void EinsumKernel::run(KernelContext& ctx) {
  Tensor& y = ctx.output(0, dtype_, out_shape_);
  auto slot = [&](int s) -> const Tensor& {
    if (s < 0) return y;
    if (s < static_cast<int>(inputs_)) return ctx.input(s);
    return scratch_[s - inputs_];
  };
  for (const auto& step : steps_) {
    if (const auto* g = std::get_if<GatherStep>(&step)) {
      dispatch_numeric(dtype_, ctx.node(), [&](auto tag) {
        using T = decltype(tag);
        gather_sum<T>(slot(g->src).template data<T>(), *g, const_cast<T*>(slot(g->dst).template data<T>()));
      });
    } else {
      const auto& c = std::get<ContractStep>(step);
      c.run(slot(c.a), slot(c.b), slot(c.dst));
    }
  }
}

std::unique_ptr<Kernel> make_einsum_kernel(const Node& node, const std::vector<InputInfo>& in) {
  return std::make_unique<EinsumKernel>(node, in);
}


// ---------------------------------------------------------------------------------------------
// Gradient: each operand's gradient is an Einsum of dY with the other operands,
// "out,t1,..(without ti)..->ti". Labels of ti that occur nowhere else (summed out by the
// forward) are left out of that Einsum and restored by Unsqueeze + Expand to X's shape;
// broadcast dims (size-1 labels, shorter ellipses) are summed back by the driver. A label
// repeated within ti (a diagonal) would need a scatter onto the diagonal: UnsupportedOp.

struct EinsumTerm {
  std::vector<std::string> tokens;  // single letters and "..."
  bool has_ellipsis() const { return std::find(tokens.begin(), tokens.end(), "...") != tokens.end(); }
  size_t letters() const { return tokens.size() - (has_ellipsis() ? 1 : 0); }
  std::string text() const {
    std::string s;
    for (const auto& t : tokens) s += t;
    return s;
  }
};

EinsumTerm parse_term(const std::string& term, const Node& node) {
  EinsumTerm t;
  for (size_t i = 0; i < term.size(); ++i) {
    if (std::isalpha(static_cast<unsigned char>(term[i]))) {
      t.tokens.emplace_back(1, term[i]);
    } else if (term.compare(i, 3, "...") == 0 && !t.has_ellipsis()) {
      t.tokens.emplace_back("...");
      i += 2;
    } else {
      throw UnsupportedOp("gradient of " + node.describe() + ": cannot parse the einsum term '" + term + "'");
    }
  }
  return t;
}

void einsum_gradient(GradientBuilder& b) {
  const Node& node = b.node();
  std::string eq;
  for (char ch : node.attr_string("equation", ""))
    if (ch != ' ') eq += ch;
  const size_t arrow = eq.find("->");
  std::vector<std::string> texts(1);
  for (char ch : eq.substr(0, arrow)) {
    if (ch == ',') texts.emplace_back();
    else texts.back().push_back(ch);
  }
  std::vector<EinsumTerm> terms;
  for (const auto& t : texts) terms.push_back(parse_term(t, node));
  EinsumTerm out;
  if (arrow != std::string::npos) {
    out = parse_term(eq.substr(arrow + 2), node);
  } else {
    // Implicit output: the ellipsis, then the letters used exactly once, in character order.
    std::map<char, int> count;
    bool ellipsis = false;
    for (const auto& t : terms) {
      ellipsis = ellipsis || t.has_ellipsis();
      for (const auto& tok : t.tokens)
        if (tok != "...") ++count[tok[0]];
    }
    if (ellipsis) out.tokens.emplace_back("...");
    for (const auto& [ch, n] : count)
      if (n == 1) out.tokens.emplace_back(1, ch);
  }
  // Ellipsis ranks (the output's is the largest operand's).
  std::vector<int64_t> ell(terms.size(), 0);
  int64_t max_ell = 0;
  for (size_t t = 0; t < terms.size(); ++t) {
    if (terms[t].has_ellipsis()) ell[t] = static_cast<int64_t>(b.rank(b.I(t))) - static_cast<int64_t>(terms[t].letters());
    max_ell = std::max(max_ell, ell[t]);
  }
  // Static size of dim `axis` of v, or -1.
  auto dim = [](const Value* v, size_t axis) -> int64_t {
    if (!v->dims || axis >= v->dims->size() || !(*v->dims)[axis].known()) return -1;
    return (*v->dims)[axis].value;
  };
  // Static size of `label` in a term of value v, or -1 (unknown / not there).
  auto label_size = [&](const EinsumTerm& term, const Value* v, int64_t term_ell, const std::string& label) -> int64_t {
    size_t axis = 0;
    for (const auto& tok : term.tokens) {
      if (tok == "...") {
        axis += static_cast<size_t>(term_ell);
        continue;
      }
      if (tok == label) return dim(v, axis);
      ++axis;
    }
    return -1;
  };

  for (size_t i = 0; i < terms.size(); ++i) {
    if (!b.needs_grad(i)) continue;
    const EinsumTerm& ti = terms[i];
    for (size_t a = 0; a < ti.tokens.size(); ++a)
      for (size_t c = 0; c < a; ++c)
        if (ti.tokens[a] == ti.tokens[c])
          throw UnsupportedOp("gradient of " + node.describe() + ": operand " + std::to_string(i) + " repeats label '" +
                              ti.tokens[a] + "' in '" + eq + "' (a diagonal), which the gradient rule does not handle");
    // The gradient Einsum's operands: dY and every other operand.
    std::vector<Value*> inputs{b.GO(0)};
    std::vector<const EinsumTerm*> in_terms{&out};
    std::vector<int64_t> in_ell{out.has_ellipsis() ? max_ell : 0};
    for (size_t t = 0; t < terms.size(); ++t) {
      if (t == i) continue;
      inputs.push_back(b.I(t));
      in_terms.push_back(&terms[t]);
      in_ell.push_back(ell[t]);
    }
    auto available = [&](const std::string& tok) {
      for (const EinsumTerm* t : in_terms)
        if (std::find(t->tokens.begin(), t->tokens.end(), tok) != t->tokens.end()) return true;
      return false;
    };
    int64_t grad_ell = 0;
    for (size_t k = 0; k < in_terms.size(); ++k)
      if (in_terms[k]->has_ellipsis()) grad_ell = std::max(grad_ell, in_ell[k]);
    const bool ellipsis_first = !ti.tokens.empty() && ti.tokens[0] == "...";
    if (ti.has_ellipsis() && grad_ell != ell[i] && !ellipsis_first)
      throw UnsupportedOp("gradient of " + node.describe() + ": operand " + std::to_string(i) +
                          "'s ellipsis is broadcast in '" + eq + "' and not leading, which the gradient rule does not handle");
    EinsumTerm result;
    std::vector<int64_t> unsqueeze_axes;
    bool expand = ti.has_ellipsis() && (grad_ell < ell[i] || !available("..."));
    int64_t axis = 0;
    for (const auto& tok : ti.tokens) {
      if (tok == "...") {
        if (available("...")) result.tokens.push_back(tok);
        else unsqueeze_axes.push_back(-1);  // not reached: handled by `expand` of a leading ellipsis below
        axis += available("...") ? grad_ell : 0;
        continue;
      }
      if (!available(tok)) {
        unsqueeze_axes.push_back(axis++);
        expand = true;
        continue;
      }
      result.tokens.push_back(tok);
      // The gradient Einsum gives this label its size among the other operands; when it may
      // be 1 there while X's is larger (X broadcast the others), Expand restores X's size.
      const int64_t mine = label_size(ti, b.I(i), ell[i], tok);
      bool sized = false;
      for (size_t k = 0; k < in_terms.size() && !sized; ++k) {
        const int64_t s = label_size(*in_terms[k], inputs[k], in_ell[k], tok);
        sized = s >= 0 && s == mine;
      }
      if (mine != 1 && !sized) expand = true;
      ++axis;
    }
    if (ti.has_ellipsis() && !available("...")) {
      if (!ellipsis_first)
        throw UnsupportedOp("gradient of " + node.describe() + ": operand " + std::to_string(i) +
                            "'s ellipsis dims are summed out in '" + eq + "' and not leading, which the gradient rule does not handle");
      unsqueeze_axes.erase(std::remove(unsqueeze_axes.begin(), unsqueeze_axes.end(), int64_t{-1}), unsqueeze_axes.end());
    }
    std::string g_eq = out.text();
    for (size_t t = 0; t < terms.size(); ++t)
      if (t != i) g_eq += "," + terms[t].text();
    g_eq += "->" + result.text();
    Value* g = b.op("Einsum", inputs, {{"equation", g_eq}});
    if (!unsqueeze_axes.empty()) g = b.unsqueeze(g, unsqueeze_axes);
    if (expand) g = b.op("Expand", {g, b.shape_of(b.I(i))});
    b.GI_broadcast(i, g);
  }
}
}  // namespace

void register_einsum_ops(Registry& r) {
  r.add({"", "Einsum", 12, INT_MAX, make_einsum_kernel, "oneDNN matmul", einsum_gradient});
}

}  // namespace onnxtrain::ops
