// `onnxtrain bench MODEL`: training-step speed and memory of a model on synthetic data (or a
// given batch): warm-up steps, timed steps, then a few profiled steps for the time per op
// type and phase. Numbers only: pass/fail tests never assert on them.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"
#include "tools/cli/train_args.h"

namespace onnxtrain::cli {

namespace {

struct BenchArgs {
  std::string model, data;
  int64_t batch_size = 32;
  int steps = 20, warmup = 3, profile_steps = 3, threads = 0;
  uint64_t seed = 0;
  bool json = false;
  TrainingFlags training;
};

// The CPU's model name from /proc/cpuinfo ("unknown CPU" without it): the machines numbers
// are compared across differ, and a ratio means little without the CPU it was taken on.
std::string cpu_model() {
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      std::string name = line.substr(line.find(':') + 1);
      name.erase(0, name.find_first_not_of(' '));
      return name;
    }
  return "unknown CPU";
}

// The process's peak resident memory (VmHWM) in MiB; 0 where /proc is missing.
double peak_rss_mib() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;  // kB
  return 0;
}

// CPU time of the whole process (every thread), in ms. On a machine shared with other work a
// step's CPU time hardly moves while its wall time does (time spent descheduled), so at one
// thread it is the steadier measure of the work a step does.
double process_cpu_ms() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_nsec) / 1e6;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int64_t batch_of(const std::map<std::string, Tensor>& feeds, const Model& model) {
  for (const ValueInfo& in : model.inputs()) {
    auto it = feeds.find(in.name);
    if (it != feeds.end() && it->second.rank() > 0) return it->second.dim(0);
  }
  return 0;
}

int run_bench(CLI::App& cmd, const BenchArgs& a) {
  Model model = Model::load(a.model);
  TrainingOptions options = training_options(cmd, a.training, std::nullopt);
  options.threads = a.threads;
  options.seed = a.seed;
  const auto feeds = a.data.empty() ? synthetic_batch(model, options.loss, a.batch_size, a.seed) : read_arrays(a.data);
  const int64_t batch = batch_of(feeds, model);
  TrainingSession session(model, options);

  for (int i = 0; i < a.warmup; ++i) session.train_step(feeds);
  std::vector<double> ms, cpu_ms;
  for (int i = 0; i < a.steps; ++i) {
    const double cpu_start = process_cpu_ms();
    const auto start = std::chrono::steady_clock::now();
    session.train_step(feeds);
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    cpu_ms.push_back(process_cpu_ms() - cpu_start);
  }
  // Profiled steps come after the timed ones, so the timing never pays for the clock reads.
  ProfileSummary profile;
  if (a.profile_steps > 0) {
    session.set_profiling(true);
    for (int i = 0; i < a.profile_steps; ++i) session.train_step(feeds);
    profile = session.profile();
    session.set_profiling(false);
  }

  const double median_ms = median(ms), min_ms = *std::min_element(ms.begin(), ms.end());
  const double median_cpu = median(cpu_ms), min_cpu = *std::min_element(cpu_ms.begin(), cpu_ms.end());
  const double samples_per_s = batch * 1e3 / median_ms;
  const double rss = peak_rss_mib(), activations = session.peak_activation_bytes() / 1048576.0;
  const double n = std::max(a.profile_steps, 1);
  // Training compute: forward + gradient of the inputs + gradient of the weights ~ 3x forward.
  const double step_flops = 3 * profile.forward_flops / n;
  const double gflops = step_flops / (min_ms * 1e-3) / 1e9;

  if (!quiet_mode()) {
    std::printf("%s: batch %lld, %s, loss %s, precision %s, conv algorithm %s, %d timed steps after %d warm-up\n",
                a.model.c_str(), static_cast<long long>(batch), options.optimizer.kind.c_str(),
                options.loss.kind.c_str(), options.precision.c_str(), options.conv_algorithm.c_str(), a.steps, a.warmup);
    std::printf("cpu: %s\n", cpu_model().c_str());
    std::printf("step: median %.3f ms, min %.3f ms; %.1f samples/s\n", median_ms, min_ms, samples_per_s);
    std::printf("cpu time per step (all threads): median %.3f ms, min %.3f ms\n", median_cpu, min_cpu);
    std::printf("memory: peak RSS %.1f MiB, peak activations + gradients %.1f MiB\n", rss, activations);
    if (a.profile_steps > 0) {
      std::printf("compute: %.3f GFLOP per step (3 x forward Conv/ConvTranspose/MatMul/Gemm/RNN), %.1f GFLOP/s at the min step\n",
                  step_flops / 1e9, gflops);
      std::printf("time per step by op (%d profiled steps, %.3f ms of kernels per step):\n", a.profile_steps,
                  profile.total_ms / n);
      std::printf("  %-10s %-40s %10s %6s %7s\n", "phase", "op", "ms", "%", "calls");
      for (const OpProfile& r : profile.ops)
        std::printf("  %-10s %-40s %10.3f %5.1f%% %7.1f\n", r.phase.c_str(), r.op_type.c_str(), r.ms / n,
                    100 * r.ms / std::max(profile.total_ms, 1e-12), r.calls / n);
    }
  }
  if (a.json) {
    nlohmann::json ops = nlohmann::json::array();
    for (const OpProfile& r : profile.ops)
      ops.push_back({{"op", r.op_type}, {"phase", r.phase}, {"ms", r.ms / n}, {"calls", r.calls / n}});
    nlohmann::json j = {{"model", a.model},
                        {"batch_size", batch},
                        {"threads", a.threads},
                        {"steps", a.steps},
                        {"optimizer", options.optimizer.kind},
                        {"loss", options.loss.kind},
                        {"precision", options.precision},
                        {"conv_algorithm", options.conv_algorithm},
                        {"cpu", cpu_model()},
                        {"median_ms", median_ms},
                        {"min_ms", min_ms},
                        {"median_cpu_ms", median_cpu},
                        {"min_cpu_ms", min_cpu},
                        {"samples_per_s", samples_per_s},
                        {"peak_rss_mb", rss},
                        {"peak_activation_mb", activations},
                        {"train_gflop_per_step", step_flops / 1e9},
                        {"gflops_per_s", gflops},
                        {"profile", ops}};
    std::cout << j.dump() << std::endl;
  }
  return 0;
}

}  // namespace

Command add_bench_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench",
                                 "Training-step speed and memory of a model on synthetic data: ms/step, samples/s, peak "
                                 "memory, time per op type (forward/backward/optimizer)");
  cmd->option_defaults()->always_capture_default();
  auto a = std::make_shared<BenchArgs>();
  cmd->add_option("model", a->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--batch-size", a->batch_size, "Batch size of the synthetic data")->check(CLI::PositiveNumber);
  cmd->add_option("--steps", a->steps, "Timed training steps")->check(CLI::PositiveNumber);
  cmd->add_option("--warmup-steps", a->warmup, "Untimed steps first (kernels and memory are set up in the first)");
  cmd->add_option("--profile-steps", a->profile_steps, "Profiled steps after the timed ones (0: no op breakdown)");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  cmd->add_option("--seed", a->seed, "Seed of the synthetic data and of dropout");
  cmd->add_option("--data", a->data,
                  "Use this batch (.npz: arrays by input name + the label) instead of synthetic data")
      ->check(CLI::ExistingFile);
  cmd->add_flag("--json", a->json, "Also print the results as one JSON object on the last line");
  add_loss_flags(cmd, a->training);
  add_optimizer_flags(cmd, a->training);
  cmd->add_option("--label", a->training.values.loss.target, "Name of the loss target (default: label)");
  return {cmd, [cmd, a]() { return run_bench(*cmd, *a); }};
}

}  // namespace onnxtrain::cli
