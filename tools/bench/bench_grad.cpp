// One forward + backward step (loss, every parameter gradient) of an ONNX model on a batch,
// or with --optimizer a whole training step (forward, backward, in-place update), timed over
// repeats; prints the best time, the peak bytes of activations + gradients the executor
// held, and the process's peak resident memory.
//
//   onnxtrain_bench_grad MODEL.onnx DATA.npz [--loss cross_entropy] [--optimizer adam] [--repeat N] [--threads T]
// DATA.npz holds the model inputs by name; the targets ("label") are made up when absent.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>

#include "onnxtrain/onnxtrain.h"

using namespace onnxtrain;

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.onnx DATA.npz [--loss KIND] [--repeat N] [--threads T]\n", argv[0]);
    return 2;
  }
  std::string loss = "cross_entropy", optimizer;
  int repeat = 10, threads = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--loss")) loss = argv[i + 1];
    else if (!std::strcmp(argv[i], "--optimizer")) optimizer = argv[i + 1];
    else if (!std::strcmp(argv[i], "--repeat")) repeat = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--threads")) threads = std::stoi(argv[i + 1]);
  }
  try {
    Model model = Model::load(argv[1]);
    auto feeds = read_arrays(argv[2]);
    TrainingOptions options;
    options.loss.kind = loss;
    options.threads = threads;
    if (!optimizer.empty()) options.optimizer = {.kind = optimizer, .lr = 1e-4};
    TrainingSession session(model, options);
    if (!feeds.count("label")) {
      const Tensor& x = feeds.begin()->second;
      Tensor label(DType::Int64, {x.dim(0)});
      std::mt19937 rng(0);
      for (int64_t i = 0; i < x.dim(0); ++i) label.data<int64_t>()[i] = static_cast<int64_t>(rng() % 10);
      feeds["label"] = label;
    }
    double best = 1e300, loss_value = 0;
    for (int i = 0; i < repeat; ++i) {
      auto start = std::chrono::steady_clock::now();
      loss_value = optimizer.empty() ? session.compute_gradients(feeds).loss : session.train_step(feeds).loss;
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    std::printf("loss %.6f\nbest step %.3f ms\npeak activations+gradients %.1f MiB\npeak RSS %.1f MiB\n", loss_value,
                best, session.peak_activation_bytes() / 1048576.0, usage.ru_maxrss / 1024.0);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
