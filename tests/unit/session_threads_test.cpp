// Thread safety as documented (docs/api.md): one session per thread, several sessions in
// one process at once. Two models trained on two threads end bit-identical to the same
// training run one after the other.
#include <gtest/gtest.h>

#include <cstring>
#include <numeric>
#include <thread>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

struct Job {
  std::string model_path;
  TrainingOptions options;
  std::map<std::string, Tensor> batch;
};

Job mlp_job() {
  Job job{test::source_dir() + "/models/mlp/mlp_op17_train.onnx", {}, {}};
  job.options.optimizer.kind = "adam";
  job.options.optimizer.lr = 1e-2;
  job.batch = {{"input", read_npz(test::source_dir() + "/models/mlp/golden.npz").at("input.input")},
               {"label", read_npz(test::source_dir() + "/models/mlp/grads.npz").at("target")}};
  return job;
}

// A CNN with BatchNormalization and Dropout (the session's seeded random generator).
Job digits_job() {
  Job job{test::source_dir() + "/models/digits/digits_cnn.onnx", {}, {}};
  job.options.optimizer.kind = "sgd";
  job.options.optimizer.momentum = 0.9;
  job.options.seed = 7;
  Model model = Model::load(job.model_path);
  auto data = fit_to_model(open_arrays(test::source_dir() + "/models/digits/train.npz"), model, job.options.loss);
  std::vector<int64_t> first(32);
  std::iota(first.begin(), first.end(), 0);
  job.batch = data->batch(first);
  return job;
}

// Trains on the calling thread; returns the model's initializers afterwards.
std::map<std::string, Tensor> train(const Job& job, int steps) {
  Model model = Model::load(job.model_path);
  TrainingOptions options = job.options;
  options.threads = 1;  // the same reduction order on every thread
  TrainingSession session(model, options);
  for (int i = 0; i < steps; ++i) session.train_step(job.batch);
  std::map<std::string, Tensor> out;
  for (const auto& name : model.initializer_names()) out[name] = model.initializer(name).clone();
  return out;
}

void expect_identical(const std::map<std::string, Tensor>& a, const std::map<std::string, Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    const Tensor& u = b.at(name);
    ASSERT_EQ(t.nbytes(), u.nbytes()) << name;
    EXPECT_EQ(std::memcmp(t.raw(), u.raw(), t.nbytes()), 0) << name;
  }
}

TEST(SessionThreads, TwoSessionsOnTwoThreadsMatchSequentialRuns) {
  const Job jobs[2] = {mlp_job(), digits_job()};
  constexpr int kSteps = 40;  // long enough for the two threads to overlap
  std::map<std::string, Tensor> sequential[2], concurrent[2];
  for (int i = 0; i < 2; ++i) sequential[i] = train(jobs[i], kSteps);
  std::exception_ptr errors[2];
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i)
      threads.emplace_back([&, i] {
        try {
          concurrent[i] = train(jobs[i], kSteps);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      });
    for (auto& t : threads) t.join();
  }
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
  for (int i = 0; i < 2; ++i) expect_identical(sequential[i], concurrent[i]);
}

}  // namespace
