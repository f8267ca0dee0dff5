// RNN, GRU and LSTM beyond the backend data: the float32 oneDNN path is cross-checked against
// the reference loops (the same model in double, which only the reference runs) for every
// cell type, direction and layout; per-entry sequence lengths are checked against separate
// full-length runs; options only the reference has are checked by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

struct RnnCase {
  std::string op = "LSTM";
  std::string attrs;  // extra attributes, e.g. `direction = "reverse"`
  int64_t seq = 4, batch = 3, input = 5, hidden = 6;
  int64_t dirs = 1;
  int opset = 14;
  bool batch_first = false;
  bool bias = true, lens = false, h0 = true, c0 = true, peephole = false;

  int64_t gates() const { return op == "RNN" ? 1 : op == "GRU" ? 3 : 4; }
  bool lstm() const { return op == "LSTM"; }
  Shape x_shape() const { return batch_first ? Shape{batch, seq, input} : Shape{seq, batch, input}; }
  Shape state_shape() const { return batch_first ? Shape{batch, dirs, hidden} : Shape{dirs, batch, hidden}; }
  Shape y_shape() const { return batch_first ? Shape{batch, seq, dirs, hidden} : Shape{seq, dirs, batch, hidden}; }
};

std::string dims(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

// The ONNX text of a one-node model computing `c` in element type `type`.
std::string model_text(const RnnCase& c, const std::string& type) {
  const int64_t gh = c.gates() * c.hidden;
  std::string ins = type + dims(c.x_shape()) + " X, " + type + dims({c.dirs, gh, c.input}) + " W, " + type +
                    dims({c.dirs, gh, c.hidden}) + " R";
  std::string args = "X, W, R";
  auto optional = [&](bool present, const std::string& decl, const std::string& name) {
    args += ", ";
    if (!present) return;
    ins += ", " + decl + " " + name;
    args += name;
  };
  optional(c.bias, type + dims({c.dirs, 2 * gh}), "B");
  optional(c.lens, "int32" + dims({c.batch}), "L");
  optional(c.h0, type + dims(c.state_shape()), "H0");
  if (c.lstm()) {
    optional(c.c0, type + dims(c.state_shape()), "C0");
    optional(c.peephole, type + dims({c.dirs, 3 * c.hidden}), "P");
  }
  while (args.size() > 2 && args.substr(args.size() - 2) == ", ") args.resize(args.size() - 2);
  std::string outs = type + dims(c.y_shape()) + " Y, " + type + dims(c.state_shape()) + " Yh";
  std::string results = "Y, Yh";
  if (c.lstm()) {
    outs += ", " + type + dims(c.state_shape()) + " Yc";
    results += ", Yc";
  }
  std::string attrs = "hidden_size = " + std::to_string(c.hidden);
  if (c.batch_first) attrs += ", layout = 1";
  if (!c.attrs.empty()) attrs += ", " + c.attrs;
  // Not a NodeCase: absent optional inputs leave empty slots in the argument list.
  return test::model_header(c.opset) + "g (" + ins + ") => (" + outs + ") {\n " + results + " = " + c.op + " <" +
         attrs + "> (" + args + ")\n}";
}

Tensor random_tensor(const Shape& shape, std::mt19937& rng, double scale = 1.0) {
  std::uniform_real_distribution<double> dist(-scale, scale);
  std::vector<double> v(static_cast<size_t>(shape_numel(shape)));
  for (double& x : v) x = dist(rng);
  return Tensor::from_vector<double>(shape, v);
}

Tensor to_float(const Tensor& t) {
  std::vector<double> d = t.as_double();
  return Tensor::from_vector<float>(t.shape(), std::vector<float>(d.begin(), d.end()));
}

// Random feeds in double for `c` (sequence lengths from `lens` when the case has them).
std::map<std::string, Tensor> random_feeds(const RnnCase& c, std::mt19937& rng, const std::vector<int32_t>& lens = {}) {
  const int64_t gh = c.gates() * c.hidden;
  std::map<std::string, Tensor> feeds{{"X", random_tensor(c.x_shape(), rng)},
                                      {"W", random_tensor({c.dirs, gh, c.input}, rng, 0.5)},
                                      {"R", random_tensor({c.dirs, gh, c.hidden}, rng, 0.5)}};
  if (c.bias) feeds["B"] = random_tensor({c.dirs, 2 * gh}, rng, 0.5);
  if (c.lens) feeds["L"] = Tensor::from_vector<int32_t>({c.batch}, lens);
  if (c.h0) feeds["H0"] = random_tensor(c.state_shape(), rng);
  if (c.lstm() && c.c0) feeds["C0"] = random_tensor(c.state_shape(), rng);
  if (c.lstm() && c.peephole) feeds["P"] = random_tensor({c.dirs, 3 * c.hidden}, rng, 0.5);
  return feeds;
}

// The feeds in element type `type`: random_feeds draws doubles.
std::map<std::string, Tensor> typed_feeds(const std::string& type, const std::map<std::string, Tensor>& feeds) {
  std::map<std::string, Tensor> typed;
  for (const auto& [name, t] : feeds) typed[name] = type == "float" && t.dtype() == DType::Double ? to_float(t) : t;
  return typed;
}

std::map<std::string, Tensor> run(const RnnCase& c, const std::string& type, const std::map<std::string, Tensor>& feeds) {
  return test::run_model(model_text(c, type), typed_feeds(type, feeds));
}

void expect_close(const std::map<std::string, Tensor>& actual, const std::map<std::string, Tensor>& expected,
                  const std::string& what) {
  for (const auto& [name, e] : expected) {
    ASSERT_TRUE(actual.count(name)) << what << ": missing " << name;
    Tensor a = actual.at(name).dtype() == DType::Float ? actual.at(name) : to_float(actual.at(name));
    EXPECT_EQ(test::compare_tensors(a, to_float(e), 1e-4, 1e-5), "") << what << ": output " << name;
  }
}

std::vector<RnnCase> cell_variants() {
  std::vector<RnnCase> cases;
  for (const char* act : {"", "activations = [\"Relu\"]", "activations = [\"Sigmoid\"]",
                          "activations = [\"LeakyRelu\"], activation_alpha = [0.2]"}) {
    RnnCase c;
    c.op = "RNN";
    c.attrs = act;
    cases.push_back(c);
  }
  for (int lbr : {0, 1}) {
    RnnCase c;
    c.op = "GRU";
    c.attrs = "linear_before_reset = " + std::to_string(lbr);
    cases.push_back(c);
  }
  RnnCase lstm;
  cases.push_back(lstm);
  lstm.peephole = true;
  cases.push_back(lstm);
  return cases;
}

std::string with_attr(const std::string& a, const std::string& b) { return a.empty() ? b : a + ", " + b; }

}  // namespace

TEST(Rnn, OneDnnMatchesReferenceForEveryCellDirectionAndLayout) {
  std::mt19937 rng(7);
  for (RnnCase c : cell_variants()) {
    for (const char* direction : {"forward", "reverse", "bidirectional"}) {
      for (bool batch_first : {false, true}) {
        RnnCase k = c;
        k.attrs = with_attr(c.attrs, std::string("direction = \"") + direction + "\"");
        k.dirs = std::string(direction) == "bidirectional" ? 2 : 1;
        k.batch_first = batch_first;
        auto feeds = random_feeds(k, rng);
        const std::string what = k.op + (k.peephole ? " with P" : "") + " <" + k.attrs + "> layout " +
                                 std::to_string(batch_first);
        expect_close(run(k, "float", feeds), run(k, "double", feeds), what);
      }
    }
  }
}

TEST(Rnn, OmittedOptionalInputsAreZero) {
  std::mt19937 rng(11);
  for (RnnCase c : cell_variants()) {
    c.bias = c.h0 = c.c0 = false;
    c.attrs = with_attr(c.attrs, "direction = \"bidirectional\"");
    c.dirs = 2;
    auto feeds = random_feeds(c, rng);
    auto actual = run(c, "float", feeds);
    expect_close(actual, run(c, "double", feeds), c.op + " without B/initial states");

    // Explicit zeros must give the same result.
    RnnCase z = c;
    z.bias = z.h0 = z.c0 = true;
    const int64_t gh = z.gates() * z.hidden;
    feeds["B"] = Tensor(DType::Double, {2, 2 * gh});
    feeds["H0"] = Tensor(DType::Double, z.state_shape());
    if (z.lstm()) feeds["C0"] = Tensor(DType::Double, z.state_shape());
    expect_close(actual, run(z, "float", feeds), c.op + " with explicit zeros");
  }
}

// Each batch entry with its own length must equal a full-length run of that entry alone,
// with Y zero beyond the entry's length (a length of 0 keeps the initial state).
TEST(Rnn, SequenceLengthsMatchSeparateFullLengthRuns) {
  std::mt19937 rng(3);
  const std::vector<int32_t> lens = {4, 2, 0, 3};
  for (RnnCase base : cell_variants()) {
    for (const char* direction : {"forward", "reverse", "bidirectional"}) {
      RnnCase c = base;
      c.batch = 4;
      c.lens = true;
      c.attrs = with_attr(base.attrs, std::string("direction = \"") + direction + "\"");
      c.dirs = std::string(direction) == "bidirectional" ? 2 : 1;
      auto feeds = random_feeds(c, rng, lens);
      auto all = run(c, "float", feeds);
      expect_close(all, run(c, "double", feeds), "float vs double with sequence_lens");
      const int64_t H = c.hidden, I = c.input, D = c.dirs, N = c.batch;
      for (int64_t b = 0; b < N; ++b) {
        const int64_t len = lens[b];
        std::vector<float> y = all["Y"].to_vector<float>(), yh = all["Yh"].to_vector<float>();
        for (int64_t t = len; t < c.seq; ++t)
          for (int64_t d = 0; d < D; ++d)
            for (int64_t j = 0; j < H; ++j) EXPECT_EQ(y[((t * D + d) * N + b) * H + j], 0.f);
        std::vector<double> h0 = feeds["H0"].to_vector<double>();
        if (len == 0) {
          for (int64_t d = 0; d < D; ++d)
            for (int64_t j = 0; j < H; ++j) EXPECT_NEAR(yh[(d * N + b) * H + j], h0[(d * N + b) * H + j], 1e-6);
          continue;
        }
        RnnCase one = c;
        one.lens = false;
        one.batch = 1;
        one.seq = len;
        std::map<std::string, Tensor> f = feeds;
        f.erase("L");
        auto slice_state = [&](const Tensor& s) {
          std::vector<double> v = s.to_vector<double>(), out;
          for (int64_t d = 0; d < D; ++d) out.insert(out.end(), v.begin() + (d * N + b) * H, v.begin() + (d * N + b + 1) * H);
          return Tensor::from_vector<double>({D, 1, H}, out);
        };
        std::vector<double> x = feeds["X"].to_vector<double>(), xs;
        for (int64_t t = 0; t < len; ++t) xs.insert(xs.end(), x.begin() + (t * N + b) * I, x.begin() + (t * N + b + 1) * I);
        f["X"] = Tensor::from_vector<double>({len, 1, I}, xs);
        f["H0"] = slice_state(feeds["H0"]);
        if (c.lstm()) f["C0"] = slice_state(feeds["C0"]);
        auto single = run(one, "float", f);
        std::vector<float> ys = single["Y"].to_vector<float>(), yhs = single["Yh"].to_vector<float>();
        for (int64_t t = 0; t < len; ++t)
          for (int64_t d = 0; d < D; ++d)
            for (int64_t j = 0; j < H; ++j)
              EXPECT_NEAR(y[((t * D + d) * N + b) * H + j], ys[(t * D + d) * H + j], 1e-5) << c.op << " " << direction;
        for (int64_t d = 0; d < D; ++d)
          for (int64_t j = 0; j < H; ++j) EXPECT_NEAR(yh[(d * N + b) * H + j], yhs[d * H + j], 1e-5) << c.op << " " << direction;
      }
    }
  }
}

// A clip bound no value reaches and the default activations spelled out must not change the
// result (the clip sends the node to the reference loops, the spelled-out names do not).
TEST(Rnn, ClipAndExplicitDefaultActivations) {
  std::mt19937 rng(5);
  RnnCase c;
  c.attrs = "activations = [\"sigmoid\", \"TANH\", \"Tanh\"], direction = \"bidirectional\"";
  c.dirs = 2;
  auto feeds = random_feeds(c, rng);
  auto expected = run(c, "float", feeds);
  c.attrs += ", clip = 1000.0";
  expect_close(run(c, "float", feeds), expected, "LSTM with a large clip");
}

// Hand-computed single-unit cells for what only the reference implements.
TEST(Rnn, NonDefaultActivationsClipAndInputForget) {
  auto scalar_run = [](const std::string& op, const std::string& attrs, int64_t gates, std::vector<float> w,
                       std::vector<float> r, const std::vector<float>& x) {
    RnnCase c;
    c.op = op;
    c.attrs = attrs;
    c.seq = static_cast<int64_t>(x.size());
    c.batch = c.input = c.hidden = 1;
    c.bias = c.h0 = c.c0 = false;
    auto out = test::run_model(model_text(c, "float"), {{"X", Tensor::from_vector<float>({c.seq, 1, 1}, x)},
                            {"W", Tensor::from_vector<float>({1, gates, 1}, w)},
                            {"R", Tensor::from_vector<float>({1, gates, 1}, r)}});
    return out["Y"].to_vector<float>();
  };
  // RNN with Affine(2, 1): h = 2 * (0.5 x + 0.25 h) + 1
  {
    auto y = scalar_run("RNN", "activations = [\"Affine\"], activation_alpha = [2.0], activation_beta = [1.0]", 1, {0.5f},
                        {0.25f}, {1.f, -2.f});
    const float h1 = 2 * 0.5f + 1, h2 = 2 * (0.5f * -2 + 0.25f * h1) + 1;
    EXPECT_NEAR(y[0], h1, 1e-6);
    EXPECT_NEAR(y[1], h2, 1e-6);
  }
  // RNN with clip 0.3 on a Tanh input of 2.
  {
    auto y = scalar_run("RNN", "clip = 0.3", 1, {1.f}, {0.f}, {2.f});
    EXPECT_NEAR(y[0], std::tanh(0.3f), 1e-6);
  }
  // GRU: alpha/beta are consumed by the activations that take them: LeakyRelu gets 0.1,
  // ScaledTanh gets alpha 0.5 and the only beta 2.0.
  {
    auto y = scalar_run("GRU", "activations = [\"LeakyRelu\", \"ScaledTanh\"], activation_alpha = [0.1, 0.5], "
                               "activation_beta = [2.0]",
                        3, {-1.f, 1.f, 1.f}, {0.f, 0.f, 0.f}, {1.f});
    const float z = -0.1f, h = 0.5f * std::tanh(2.f * 1.f);
    EXPECT_NEAR(y[0], (1 - z) * h, 1e-6);
  }
  // LSTM with input_forget: f = 1 - i. Gates (i, o, f, c) pre-activations: x * w.
  {
    auto y = scalar_run("LSTM", "input_forget = 1", 4, {0.3f, 0.4f, 9.f, 0.6f}, {0.f, 0.f, 0.f, 0.f}, {1.f, 1.f});
    auto sig = [](float v) { return 1 / (1 + std::exp(-v)); };
    const float i = sig(0.3f), o = sig(0.4f), g = std::tanh(0.6f);
    const float c1 = i * g, c2 = (1 - i) * c1 + i * g;
    EXPECT_NEAR(y[0], o * std::tanh(c1), 1e-6);
    EXPECT_NEAR(y[1], o * std::tanh(c2), 1e-6);
  }
}

TEST(Rnn, InvalidAttributesAndShapesGiveClearErrors) {
  auto error_of = [](const RnnCase& c, const std::map<std::string, Tensor>& feeds) {
    return test::run_error(model_text(c, "float"), typed_feeds("float", feeds));
  };
  std::mt19937 rng(1);
  RnnCase c;
  auto feeds = random_feeds(c, rng);
  RnnCase bad = c;
  bad.attrs = "direction = \"sideways\"";
  EXPECT_CONTAINS(error_of(bad, feeds), "direction");
  bad = c;
  bad.attrs = "activations = [\"Sigmoid\", \"Tanh\"]";
  EXPECT_CONTAINS(error_of(bad, feeds), "activations");
  bad = c;
  bad.attrs = "activations = [\"Sigmoid\", \"Swish\", \"Tanh\"]";
  EXPECT_CONTAINS(error_of(bad, feeds), "Swish");
  // hidden_size 5 with R of shape [1,16,4].
  test::expect_error(test::model_header(14) +
                         "g (float[2, 1, 3] X, float[1, 16, 3] W, float[1, 16, 4] R) => (float[1, 1, 5] Yh) {\n"
                         "  Y, Yh = LSTM <hidden_size = 5> (X, W, R)\n}",
                     {{"X", Tensor(DType::Float, {2, 1, 3})},
                      {"W", Tensor(DType::Float, {1, 16, 3})},
                      {"R", Tensor(DType::Float, {1, 16, 4})}},
                     "W has shape [1,16,3], expected [1,20,3]");
  bad = c;
  bad.lens = true;
  auto lens_feeds = random_feeds(bad, rng, {4, 5, 1});
  EXPECT_CONTAINS(error_of(bad, lens_feeds), "sequence_lens");
}

// Before opset 14 there is no layout; opset 1 has output_sequence and GRU-1 no
// linear_before_reset. The semantics are otherwise those of opset 14.
TEST(Rnn, OlderOpsetsComputeTheSame) {
  std::mt19937 rng(9);
  for (RnnCase c : cell_variants()) {
    if (c.op == "GRU" && c.attrs != "linear_before_reset = 0") continue;
    auto feeds = random_feeds(c, rng);
    auto expected = run(c, "float", feeds);
    for (int opset : {1, 3, 7}) {
      RnnCase old = c;
      old.opset = opset;
      if (opset == 1) old.attrs = with_attr(c.op == "GRU" ? "" : c.attrs, "output_sequence = 1");
      expect_close(run(old, "float", feeds), expected, c.op + " opset " + std::to_string(opset));
    }
  }
}

TEST(Rnn, EmptySequenceKeepsTheInitialState) {
  std::mt19937 rng(2);
  RnnCase c;
  c.seq = 0;
  auto feeds = random_feeds(c, rng);
  auto out = run(c, "float", feeds);
  EXPECT_EQ(out["Y"].shape(), (Shape{0, 1, 3, 6}));
  EXPECT_EQ(test::compare_tensors(out["Yh"], to_float(feeds["H0"])), "");
  EXPECT_EQ(test::compare_tensors(out["Yc"], to_float(feeds["C0"])), "");
}
