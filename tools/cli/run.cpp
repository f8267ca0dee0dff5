// `onnxtrain run MODEL --data IN.npz [--out OUT.npz]`: forward pass over arrays by name.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace onnxtrain::cli {

namespace {

struct RunOptions {
  std::string model, data, out;
  std::vector<std::string> outputs;
  int threads = 0;
  int repeat = 1;
  bool train_mode = false;
};

std::string summary(const Tensor& t) {
  std::string s = dtype_name(t.dtype()) + shape_str(t.shape());
  if (t.numel() == 0 || t.dtype() == DType::Float16 || t.dtype() == DType::BFloat16) return s;
  auto v = t.as_double();
  double lo = v[0], hi = v[0], sum = 0;
  for (double x : v) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    sum += x;
  }
  char buf[128];
  std::snprintf(buf, sizeof buf, "  min %.6g  max %.6g  mean %.6g", lo, hi, sum / static_cast<double>(v.size()));
  return s + buf;
}

}  // namespace

Command add_run_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("run", "Run a model forward on arrays from an .npz/.npy file");
  auto opt = std::make_shared<RunOptions>();
  cmd->add_option("model", opt->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", opt->data, "Input arrays (.npz keyed by input name, or .npy for a single input)")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", opt->out, "Write the outputs to this .npz file");
  cmd->add_option("--output", opt->outputs, "Output names to compute (default: all model outputs)");
  cmd->add_option("--threads", opt->threads, "Threads (default: all cores)");
  cmd->add_option("--repeat", opt->repeat, "Run N times and report the fastest (benchmarking)")->check(CLI::PositiveNumber);
  cmd->add_flag("--train-mode", opt->train_mode,
                "Run the graph as written (training-form BatchNorm/Dropout stay in training mode); "
                "the default evaluates with running statistics and no dropout");
  return {cmd, [opt]() {
    Model model = Model::load(opt->model);
    auto arrays = read_arrays(opt->data);
    // A single .npy feeds the only input regardless of its file name (in an .npz the
    // array names are explicit and must match).
    auto inputs = model.inputs();
    const bool is_npy = opt->data.size() >= 4 && opt->data.compare(opt->data.size() - 4, 4, ".npy") == 0;
    if (is_npy && inputs.size() == 1 && !arrays.count(inputs[0].name)) {
      Tensor only = arrays.begin()->second;
      arrays = {{inputs[0].name, only}};
    }
    std::map<std::string, Tensor> feeds;
    std::string ignored;
    for (const auto& [name, t] : arrays) {
      bool is_input = false;
      for (const auto& in : inputs) is_input = is_input || in.name == name;
      if (is_input) feeds[name] = t;
      else ignored += (ignored.empty() ? "" : ", ") + name;
    }
    if (!ignored.empty()) std::cerr << "note: ignoring arrays that are not model inputs: " << ignored << "\n";
    for (const auto& in : inputs)
      if (!arrays.count(in.name)) {
        std::string have;
        for (const auto& [name, t] : arrays) have += (have.empty() ? "" : ", ") + name;
        throw DataError(opt->data + " has no array named '" + in.name + "' for the model input " + in.name + " (" +
                        dtype_name(in.dtype) + in.shape_str() + "); it has: " + (have.empty() ? "nothing" : have));
      }
    InferenceSession session(model, SessionOptions{.threads = opt->threads, .inference_mode = !opt->train_mode});
    std::map<std::string, Tensor> outputs;
    double best_ms = 1e300, first_ms = 0;
    for (int i = 0; i < opt->repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      outputs = session.run(feeds, opt->outputs);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
      if (i == 0) first_ms = ms;
      best_ms = std::min(best_ms, ms);
    }
    for (const auto& [name, t] : outputs) std::cout << pad(name, 20) << summary(t) << "\n";
    std::cout << "time: first run " << first_ms << " ms (includes planning)";
    if (opt->repeat > 1) std::cout << ", best of " << opt->repeat << ": " << best_ms << " ms";
    std::cout << "\n";
    if (!opt->out.empty()) {
      write_npz(opt->out, outputs);
      std::cout << "wrote " << outputs.size() << " output(s) to " << opt->out << "\n";
    }
    return 0;
  }};
}

}  // namespace onnxtrain::cli
