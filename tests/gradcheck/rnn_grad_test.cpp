// Gradients of RNN, GRU and LSTM (ai.onnxtrain RNNGrad / GRUGrad / LSTMGrad).
//  * float64 finite differences through the reference BPTT for every cell, direction, layout,
//    optional input, sequence_lens, clip, non-default activations and opset form, with the
//    gradient flowing from Y, Y_h, Y_c alone and from all of them at once;
//  * float32 finite differences on the oneDNN backward path;
//  * the oneDNN float32 backward against the float64 reference at 1e-4 on random inputs for
//    every cell type, direction and layout (and that oneDNN really ran);
//  * the GRU node of the PyTorch training export (models/gru) is on the oneDNN path.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <spdlog/sinks/ringbuffer_sink.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "graph/passes/autodiff.h"
#include "graph/importer.h"
#include "onnxtrain/onnxtrain.h"
#include "src/executor.h"
#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;

namespace {

struct RnnCase {
  std::string op = "LSTM";
  std::string attrs;  // extra attributes, e.g. `direction = "reverse"`
  int64_t seq = 3, batch = 2, input = 3, hidden = 4;
  int64_t dirs = 1;
  int opset = 14;
  bool batch_first = false;
  bool bias = true, lens = false, h0 = true, c0 = true, peephole = false;
  std::vector<int32_t> len_values;
  std::string check = "Y";  // Y, Yh, Yc or "all" (Y + Y_h [+ Y_c], time-major only)

  int64_t gates() const { return op == "RNN" ? 1 : op == "GRU" ? 3 : 4; }
  bool lstm() const { return op == "LSTM"; }
  Shape x_shape() const { return batch_first ? Shape{batch, seq, input} : Shape{seq, batch, input}; }
  Shape state_shape() const { return batch_first ? Shape{batch, dirs, hidden} : Shape{dirs, batch, hidden}; }
  Shape y_shape() const { return batch_first ? Shape{batch, seq, dirs, hidden} : Shape{seq, dirs, batch, hidden}; }
  std::string describe() const {
    return op + " opset " + std::to_string(opset) + " <" + attrs + ">" + (batch_first ? " layout 1" : "") +
           (bias ? "" : " no B") + (h0 ? "" : " no H0") + (lstm() && !c0 ? " no C0" : "") + (peephole ? " P" : "") +
           (lens ? " lens" : "") + " d" + check;
  }
};

void PrintTo(const RnnCase& c, std::ostream* os) { *os << c.describe(); }

std::string dims(const Shape& s) { return shape_str(s); }

std::string attributes(const RnnCase& c) {
  std::string attrs = "hidden_size = " + std::to_string(c.hidden);
  if (c.batch_first) attrs += ", layout = 1";
  if (!c.attrs.empty()) attrs += ", " + c.attrs;
  return attrs;
}

// Declarations and the argument list of the forward inputs.
void forward_inputs(const RnnCase& c, const std::string& type, std::string& decls, std::string& args) {
  const int64_t gh = c.gates() * c.hidden;
  decls = type + dims(c.x_shape()) + " X, " + type + dims({c.dirs, gh, c.input}) + " W, " + type +
          dims({c.dirs, gh, c.hidden}) + " R";
  args = "X, W, R";
  auto optional = [&](bool present, const std::string& decl, const std::string& name) {
    args += ", ";
    if (!present) return;
    decls += ", " + decl + " " + name;
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
}

// A one-node forward model whose output is c.check.
std::string forward_model(const RnnCase& c, const std::string& type) {
  std::string decls, args;
  forward_inputs(c, type, decls, args);
  const std::string results = c.lstm() ? "Y, Yh, Yc" : "Y, Yh";
  std::string body = results + " = " + c.op + " <" + attributes(c) + "> (" + args + ")\n";
  std::string out;
  if (c.check == "all") {
    body += c.lstm() ? " S1 = Add(Y, Yh)\n Z = Add(S1, Yc)\n" : " Z = Add(Y, Yh)\n";
    out = type + dims(c.y_shape()) + " Z";
  } else {
    out = type + dims(c.check == "Y" ? c.y_shape() : c.state_shape()) + " " + c.check;
  }
  return test::model_header(c.opset) + "g (" + decls + ") => (" + out + ") {\n " + body + "}";
}

std::map<std::string, Tensor> random_inputs(const RnnCase& c, DType dtype, uint64_t seed) {
  const int64_t gh = c.gates() * c.hidden;
  std::map<std::string, Tensor> in{{"X", test::random_tensor(dtype, c.x_shape(), seed)},
                                   {"W", test::random_tensor(dtype, {c.dirs, gh, c.input}, seed + 1, -0.6, 0.6)},
                                   {"R", test::random_tensor(dtype, {c.dirs, gh, c.hidden}, seed + 2, -0.6, 0.6)}};
  if (c.bias) in["B"] = test::random_tensor(dtype, {c.dirs, 2 * gh}, seed + 3, -0.5, 0.5);
  if (c.lens) in["L"] = Tensor::from_vector<int32_t>({c.batch}, c.len_values);
  if (c.h0) in["H0"] = test::random_tensor(dtype, c.state_shape(), seed + 4);
  if (c.lstm() && c.c0) in["C0"] = test::random_tensor(dtype, c.state_shape(), seed + 5);
  if (c.lstm() && c.peephole) in["P"] = test::random_tensor(dtype, {c.dirs, 3 * c.hidden}, seed + 6, -0.5, 0.5);
  return in;
}

RnnCase with(RnnCase c, const std::string& attrs, int64_t dirs = 1) {
  c.attrs = c.attrs.empty() ? attrs : attrs.empty() ? c.attrs : c.attrs + ", " + attrs;
  c.dirs = dirs;
  return c;
}

const char* kDirections[] = {"", "direction = \"reverse\"", "direction = \"bidirectional\""};

// Cell variants x directions x {time-major, batch-first} x which output the gradient flows from.
std::vector<RnnCase> cases() {
  std::vector<RnnCase> base;
  auto cell = [&](const std::string& op, const std::string& attrs) {
    RnnCase c;
    c.op = op;
    c.attrs = attrs;
    base.push_back(c);
  };
  cell("RNN", "");
  cell("RNN", "activations = [\"Relu\"]");
  cell("RNN", "activations = [\"LeakyRelu\"], activation_alpha = [0.3]");
  cell("GRU", "");
  cell("GRU", "linear_before_reset = 1");
  cell("LSTM", "");
  RnnCase p;
  p.peephole = true;
  base.push_back(p);

  std::vector<RnnCase> out;
  for (const RnnCase& b : base) {
    for (int d = 0; d < 3; ++d) {
      for (bool batch_first : {false, true}) {
        RnnCase c = with(b, kDirections[d], d == 2 ? 2 : 1);
        c.batch_first = batch_first;
        std::vector<std::string> checks = {"Y", "Yh"};
        if (c.lstm()) checks.push_back("Yc");
        if (!batch_first) checks.push_back("all");
        for (const auto& k : checks) {
          c.check = k;
          out.push_back(c);
        }
      }
    }
  }

  // Options only the reference has, optional inputs, sequence lengths, older opsets.
  auto add_all_outputs = [&](RnnCase c) {
    c.check = "all";
    out.push_back(c);
  };
  for (const std::string op : {"RNN", "GRU", "LSTM"}) {
    RnnCase c;
    c.op = op;
    RnnCase bare = with(c, "direction = \"bidirectional\"", 2);
    bare.bias = bare.h0 = bare.c0 = false;
    add_all_outputs(bare);
    RnnCase clip = with(c, "clip = 0.7");
    add_all_outputs(clip);
    for (int d = 0; d < 3; ++d) {
      RnnCase l = with(c, kDirections[d], d == 2 ? 2 : 1);
      l.batch = 4;
      l.seq = 4;
      l.lens = true;
      l.len_values = {4, 2, 0, 3};
      add_all_outputs(l);
      l.batch_first = true;
      l.check = "Y";
      out.push_back(l);
      l.check = "Yh";
      out.push_back(l);
    }
  }
  {
    RnnCase c;
    c.op = "RNN";
    add_all_outputs(with(c, "activations = [\"Sigmoid\"]"));
    add_all_outputs(with(c, "activations = [\"Affine\"], activation_alpha = [0.7], activation_beta = [0.2]"));
    add_all_outputs(with(c, "direction = \"bidirectional\", activations = [\"ScaledTanh\", \"Softsign\"], "
                            "activation_alpha = [1.3], activation_beta = [0.6]", 2));
    add_all_outputs(with(c, "activations = [\"Elu\"], activation_alpha = [0.5]"));
    add_all_outputs(with(c, "activations = [\"Softplus\"]"));
    add_all_outputs(with(c, "activations = [\"HardSigmoid\"], activation_alpha = [0.3], activation_beta = [0.4]"));
    add_all_outputs(with(c, "activations = [\"ThresholdedRelu\"], activation_alpha = [0.05]"));
    c.op = "GRU";
    add_all_outputs(with(c, "activations = [\"HardSigmoid\", \"Softsign\"]"));
    add_all_outputs(with(c, "direction = \"bidirectional\", activations = [\"Sigmoid\", \"Tanh\", \"HardSigmoid\", \"Elu\"], "
                            "linear_before_reset = 1", 2));
    add_all_outputs(with(c, "clip = 0.6, linear_before_reset = 1"));
    c.op = "LSTM";
    add_all_outputs(with(c, "activations = [\"HardSigmoid\", \"Softsign\", \"ScaledTanh\"], activation_alpha = [0.3, 1.2], "
                            "activation_beta = [0.45, 0.8]"));
    RnnCase coupled = with(c, "input_forget = 1");
    coupled.peephole = true;
    add_all_outputs(coupled);
    RnnCase clipped = with(c, "clip = 0.5, direction = \"bidirectional\"", 2);
    clipped.peephole = true;
    add_all_outputs(clipped);
    RnnCase no_c0 = c;
    no_c0.c0 = false;
    no_c0.check = "Yc";
    out.push_back(no_c0);
  }
  return out;
}

class RnnGrad : public ::testing::TestWithParam<RnnCase> {};

TEST_P(RnnGrad, Float64MatchesFiniteDifferences) {
  const RnnCase& p = GetParam();
  GradCase c;
  c.model_text = forward_model(p, "double");
  c.inputs = random_inputs(p, DType::Double, 11);
  EXPECT_EQ(test::check_gradients(c), "") << p.describe();
}

INSTANTIATE_TEST_SUITE_P(Cells, RnnGrad, ::testing::ValuesIn(cases()));

// The oneDNN backward path checked by finite differences in float32.
TEST(RnnGradFloat, OneDnnMatchesFiniteDifferences) {
  std::vector<RnnCase> list;
  RnnCase c;
  c.op = "RNN";
  list.push_back(with(c, "direction = \"bidirectional\"", 2));
  c.op = "GRU";
  list.push_back(c);
  list.push_back(with(c, "linear_before_reset = 1, direction = \"reverse\""));
  RnnCase bf = with(c, "linear_before_reset = 1, direction = \"bidirectional\"", 2);
  bf.batch_first = true;
  list.push_back(bf);
  c.op = "LSTM";
  c.peephole = true;
  list.push_back(with(c, "direction = \"bidirectional\"", 2));
  c.check = "all";
  list.push_back(c);
  for (const RnnCase& p : list) {
    GradCase g;
    g.model_text = forward_model(p, "float");
    g.inputs = random_inputs(p, DType::Float, 5);
    g.four_point = true;
    g.eps = 1e-2;
    g.rtol = 2e-2;
    g.atol = 2e-3;
    EXPECT_EQ(test::check_gradients(g), "") << p.describe();
  }
}

// ---------------------------------------------------------------------------------------
// The *Grad ops directly: oneDNN (float32) against the reference (float64).

// Records the debug messages of the kernels' plan-time choices.
class LogCapture {
 public:
  LogCapture() : sink_(std::make_shared<spdlog::sinks::ringbuffer_sink_mt>(256)) {
    auto logger = spdlog::default_logger();
    old_level_ = logger->level();
    logger->sinks().push_back(sink_);
    logger->set_level(spdlog::level::debug);
  }
  ~LogCapture() {
    auto logger = spdlog::default_logger();
    auto& sinks = logger->sinks();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), sink_), sinks.end());
    logger->set_level(old_level_);
  }
  std::string text() const {
    std::string all;
    for (const auto& line : sink_->last_formatted()) all += line;
    return all;
  }

 private:
  std::shared_ptr<spdlog::sinks::ringbuffer_sink_mt> sink_;
  spdlog::level::level_enum old_level_;
};

std::string grad_model(const RnnCase& c, const std::string& type, bool dy, bool dyh, bool dyc) {
  std::string decls, args;
  forward_inputs(c, type, decls, args);
  // The Grad node takes all forward input positions, then the output gradients.
  const int nf = c.lstm() ? 8 : 6;
  int commas = 0;
  for (char ch : args) commas += ch == ',';
  for (int i = commas + 1; i < nf; ++i) args += ", ";
  auto grad_in = [&](bool present, const Shape& shape, const std::string& name) {
    args += ", ";
    if (!present) return;
    decls += ", " + type + dims(shape) + " " + name;
    args += name;
  };
  grad_in(dy, c.y_shape(), "dY");
  grad_in(dyh, c.state_shape(), "dYh");
  if (c.lstm()) grad_in(dyc, c.state_shape(), "dYc");
  while (args.size() > 2 && args.substr(args.size() - 2) == ", ") args.resize(args.size() - 2);
  const int64_t gh = c.gates() * c.hidden;
  std::string outs = type + dims(c.x_shape()) + " dX, " + type + dims({c.dirs, gh, c.input}) + " dW, " + type +
                     dims({c.dirs, gh, c.hidden}) + " dR, " + type + dims({c.dirs, 2 * gh}) + " dB, " + type +
                     dims(c.state_shape()) + " dH0";
  std::string results = "dX, dW, dR, dB, dH0";
  if (c.lstm()) {
    outs += ", " + type + dims(c.state_shape()) + " dC0, " + type + dims({c.dirs, 3 * c.hidden}) + " dP";
    results += ", dC0, dP";
  }
  return test::model_header(14, {{"ai.onnxtrain", 1}}) + "g (" + decls + ") => (" + outs + ") {\n " + results +
         " = ai.onnxtrain." + c.op + "Grad <" + attributes(c) + "> (" + args + ")\n}";
}

Tensor to_float(const Tensor& t) {
  std::vector<double> d = t.as_double();
  return Tensor::from_vector<float>(t.shape(), std::vector<float>(d.begin(), d.end()));
}

TEST(RnnGradOneDnn, MatchesFloat64ReferenceForEveryCellDirectionAndLayout) {
  std::vector<RnnCase> cells;
  RnnCase c;
  c.seq = 5;
  c.batch = 3;
  c.input = 7;
  c.hidden = 6;
  for (const char* act : {"", "activations = [\"Relu\"]", "activations = [\"Sigmoid\"]",
                          "activations = [\"LeakyRelu\"], activation_alpha = [0.2]"}) {
    c.op = "RNN";
    c.attrs = act;
    cells.push_back(c);
  }
  c.attrs = "";
  c.op = "GRU";
  cells.push_back(c);
  cells.push_back(with(c, "linear_before_reset = 1"));
  c.op = "LSTM";
  cells.push_back(c);
  c.peephole = true;
  cells.push_back(c);
  RnnCase bare = c;  // no optional inputs at all
  bare.bias = bare.h0 = bare.c0 = bare.peephole = false;
  cells.push_back(bare);

  uint64_t seed = 100;
  for (const RnnCase& cell : cells) {
    for (int d = 0; d < 3; ++d) {
      for (bool batch_first : {false, true}) {
        RnnCase k = with(cell, kDirections[d], d == 2 ? 2 : 1);
        k.batch_first = batch_first;
        // Every subset of output gradients flows in some case.
        const int variant = static_cast<int>(seed % 4);
        const bool dy = variant != 1, dyh = variant != 2, dyc = variant != 3;
        auto feeds = random_inputs(k, DType::Double, seed);
        if (dy) feeds["dY"] = test::random_tensor(DType::Double, k.y_shape(), seed + 10);
        if (dyh) feeds["dYh"] = test::random_tensor(DType::Double, k.state_shape(), seed + 11);
        if (dyc && k.lstm()) feeds["dYc"] = test::random_tensor(DType::Double, k.state_shape(), seed + 12);
        ++seed;
        std::map<std::string, Tensor> ffeeds;
        for (const auto& [name, t] : feeds) ffeeds[name] = t.dtype() == DType::Double ? to_float(t) : t;

        std::map<std::string, Tensor> actual;
        {
          LogCapture log;
          actual = test::run_model(grad_model(k, "float", dy, dyh, dyc), ffeeds);
          EXPECT_NE(log.text().find("oneDNN backward"), std::string::npos) << k.describe() << ": " << log.text();
        }
        auto expected = test::run_model(grad_model(k, "double", dy, dyh, dyc), feeds);
        for (const auto& [name, e] : expected)
          EXPECT_EQ(test::compare_tensors(actual.at(name), to_float(e), 1e-4, 1e-5), "")
              << k.describe() << " dY " << dy << " dYh " << dyh << " dYc " << dyc << ": " << name;
      }
    }
  }
}

// Full-length sequence_lens stay on oneDNN; shorter ones fall back to the reference loops
// at run time: both agree with float64.
TEST(RnnGradOneDnn, SequenceLengthsFallBackToReference) {
  for (const char* op : {"RNN", "GRU", "LSTM"}) {
    for (const std::vector<int32_t>& lens : {std::vector<int32_t>{4, 4, 4}, std::vector<int32_t>{4, 1, 0}}) {
      RnnCase k;
      k.op = op;
      k.seq = 4;
      k.batch = 3;
      k.lens = true;
      k.len_values = lens;
      k = with(k, "direction = \"bidirectional\"", 2);
      auto feeds = random_inputs(k, DType::Double, 3);
      feeds["dY"] = test::random_tensor(DType::Double, k.y_shape(), 4);
      feeds["dYh"] = test::random_tensor(DType::Double, k.state_shape(), 5);
      std::map<std::string, Tensor> ffeeds;
      for (const auto& [name, t] : feeds) ffeeds[name] = t.dtype() == DType::Double ? to_float(t) : t;
      auto actual = test::run_model(grad_model(k, "float", true, true, false), ffeeds);
      auto expected = test::run_model(grad_model(k, "double", true, true, false), feeds);
      for (const auto& [name, e] : expected)
        EXPECT_EQ(test::compare_tensors(actual.at(name), to_float(e), 1e-4, 1e-5), "") << k.describe() << ": " << name;
    }
  }
}

// The model a user trains: PyTorch's GRU export (TRAINING mode, linear_before_reset = 1,
// gate reordering by Slice/Concat in the graph, batch-first via Transpose). Its GRU node
// must plan the oneDNN backward; its gradients are checked against the float64 reference
// run on the same values.
TEST(RnnGradOneDnn, PyTorchGruExportIsOnOneDnnPath) {
  onnx::ModelProto proto;
  graph::load_model_file(test::source_dir() + "/models/gru/gru_op17_train.onnx", proto);
  graph::ImportOptions options;
  options.model_path = "gru_op17_train.onnx";
  auto g = graph::import_graph(proto, options);
  graph::Node* gru = nullptr;
  for (const auto& n : g->nodes())
    if (n->op_type == "GRU") gru = n.get();
  ASSERT_NE(gru, nullptr);
  EXPECT_EQ(gru->attr_int("linear_before_reset", 0), 1);
  const std::string y = gru->outputs[0]->name;
  std::vector<std::string> wrt;
  for (int i : {0, 1, 2, 3}) wrt.push_back(gru->inputs[i]->name);  // X (transposed), W, R, B (reordered)
  auto grads = graph::build_gradient_graph(*g, y, wrt);
  std::vector<std::string> fetch = wrt;
  for (const auto& name : wrt) fetch.push_back(grads.gradient_of.at(name));

  const int64_t batch = 3;
  std::unordered_map<std::string, Tensor> feeds{{"input", test::random_tensor(DType::Float, {batch, 10, 8}, 9)}};
  std::vector<Tensor> values;
  {
    LogCapture log;
    Executor exec(*g, fetch);
    values = exec.run(feeds);
    EXPECT_NE(log.text().find("GRUGrad"), std::string::npos) << log.text();
    EXPECT_NE(log.text().find("oneDNN backward"), std::string::npos) << log.text();
  }

  // The same gradient (dY = ones) from the float64 reference.
  RnnCase k;
  k.op = "GRU";
  k.seq = values[0].shape()[0];
  k.batch = values[0].shape()[1];
  k.input = values[0].shape()[2];
  k.hidden = gru->attr_int("hidden_size");
  k.h0 = false;
  k.attrs = "linear_before_reset = 1";
  std::map<std::string, Tensor> ref_feeds{{"X", values[0]}, {"W", values[1]}, {"R", values[2]}, {"B", values[3]}};
  for (auto& [name, t] : ref_feeds) {
    std::vector<double> d = t.as_double();
    t = Tensor::from_vector<double>(t.shape(), d);
  }
  ref_feeds["dY"] = Tensor::from_vector<double>(k.y_shape(), std::vector<double>(shape_numel(k.y_shape()), 1.0));
  auto expected = test::run_model(grad_model(k, "double", true, false, false), ref_feeds);
  const char* names[] = {"dX", "dW", "dR", "dB"};
  for (int i = 0; i < 4; ++i)
    EXPECT_EQ(test::compare_tensors(values[4 + i], to_float(expected.at(names[i])), 1e-4, 1e-5), "") << names[i];
}

// Gradients of sum(Y_h) + sum(Y) built without the checker's loss (whose ReduceSumTo gradient
// needs Expand, opset >= 8): the seed is OnesLike on each output.
std::vector<Tensor> sum_gradients(const std::string& text, const std::map<std::string, Tensor>& inputs,
                                  const std::vector<std::string>& wrt) {
  onnx::ModelProto proto;
  graph::load_model_text(text, proto);
  graph::ImportOptions options;
  options.model_path = "older opset model";
  auto g = graph::import_graph(proto, options);
  auto grads = graph::build_gradient_graph(*g, g->outputs.at(0)->name, wrt);
  std::vector<std::string> fetch;
  for (const auto& name : wrt) fetch.push_back(grads.gradient_of.at(name));
  Executor exec(*g, fetch);
  std::unordered_map<std::string, Tensor> feeds(inputs.begin(), inputs.end());
  return exec.run(feeds);
}

// Opsets before 14 (no layout) and before 3 (GRU without linear_before_reset) build the same
// gradients as opset 14, which the finite-difference cases check.
TEST(RnnGrad, OlderOpsetsMatchOpset14) {
  struct Old {
    std::string op, attrs;
    int opset;
  };
  for (const Old& o : {Old{"RNN", "direction = \"reverse\"", 7}, Old{"GRU", "direction = \"bidirectional\"", 7},
                       Old{"GRU", "linear_before_reset = 1", 3}, Old{"GRU", "", 1}, Old{"LSTM", "", 7},
                       Old{"LSTM", "direction = \"bidirectional\"", 7}}) {
    RnnCase c;
    c.op = o.op;
    c = with(c, o.attrs, o.attrs.find("bidirectional") != std::string::npos ? 2 : 1);
    c.peephole = c.lstm();
    for (const std::string check : {"Y", "Yh"}) {
      c.check = check;
      auto inputs = random_inputs(c, DType::Double, 21);
      std::vector<std::string> wrt;
      for (const auto& [name, t] : inputs) wrt.push_back(name);
      RnnCase old = c;
      old.opset = o.opset;
      auto expected = sum_gradients(forward_model(c, "double"), inputs, wrt);
      auto actual = sum_gradients(forward_model(old, "double"), inputs, wrt);
      for (size_t i = 0; i < wrt.size(); ++i)
        EXPECT_EQ(test::compare_tensors(actual[i], expected[i], 1e-12, 1e-12), "")
            << old.describe() << ": d" << wrt[i];
    }
  }
}

}  // namespace
