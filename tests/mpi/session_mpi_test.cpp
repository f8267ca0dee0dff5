// Run under `mpirun -np 2`: a TrainingSession on two ranks, each with its slice of every
// batch, trains exactly like one process on the whole batches. Every rank also trains
// the single-process reference itself and compares.
#include <gtest/gtest.h>

#include <random>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

namespace onnxtrain {
namespace {

// A BatchNorm-free MLP: 4 -> 5 (tanh) -> 3.
const char* const kMlp = R"(
  <ir_version: 8, opset_import: ["" : 17]>
  g (float[N, 4] X) => (float[N, 3] Y)
  <float[4, 5] W1 = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2, 0.3, -0.1, 0.2, 0.5, 0.4, -0.3, 0.2, 0.1},
   float[5] b1 = {0.1, 0.2, 0.3, -0.1, 0.0},
   float[5, 3] W2 = {0.2, -0.1, 0.4, 0.3, 0.6, -0.5, 0.1, 0.2, -0.3, 0.5, 0.1, 0.2, -0.4, 0.3, 0.7},
   float[3] b2 = {0.0, 0.1, -0.1}>
  { H = MatMul(X, W1) Hb = Add(H, b1) A = Tanh(Hb) Z = MatMul(A, W2) Y = Add(Z, b2) }
)";

// Global batch `step` of `n` rows, the same on every rank.
std::map<std::string, Tensor> global_batch(int step, int64_t n) {
  std::mt19937 rng(1000 + step);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * 4), y(n * 3);
  for (float& v : x) v = normal(rng);
  for (float& v : y) v = normal(rng);
  return {{"X", Tensor::from_vector<float>({n, 4}, x)}, {"label", Tensor::from_vector<float>({n, 3}, y)}};
}

// Rows [begin, end) of every array.
std::map<std::string, Tensor> rows(const std::map<std::string, Tensor>& batch, int64_t begin, int64_t end) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : batch) {
    const int64_t width = t.numel() / t.dim(0);
    std::vector<float> v(t.data<float>() + begin * width, t.data<float>() + end * width);
    Shape shape = t.shape();
    shape[0] = end - begin;
    out[name] = Tensor::from_vector<float>(shape, v);
  }
  return out;
}

TrainingOptions options_for(const std::string& optimizer, int accumulate = 1) {
  TrainingOptions o;
  o.loss.kind = "mse";
  o.optimizer.kind = optimizer;
  o.optimizer.lr = optimizer == "sgd" ? 0.1 : 0.01;
  o.optimizer.momentum = optimizer == "sgd" ? 0.9 : 0;
  o.accumulate = accumulate;
  o.threads = 1;
  return o;
}

struct Case {
  std::string optimizer;
  std::vector<int64_t> batch_sizes;  // global batch size of each call
  int accumulate = 1;
};

// Trains `c` on all ranks (rank r takes its slice of each global batch, the first ranks
// one row more when it does not divide) and in this process alone; expects the same weights.
void expect_same_as_one_process(const Case& c) {
  Distributed& world = Distributed::world();
  ASSERT_EQ(world.size(), 2) << "run under mpirun -np 2";
  const int r = world.rank(), n = world.size();
  Model model = Model::from_text(kMlp), reference_model = Model::from_text(kMlp);
  TrainingSession session(model, options_for(c.optimizer, c.accumulate));
  TrainingSession reference(reference_model, options_for(c.optimizer, c.accumulate));
  session.set_distributed(world);
  for (size_t step = 0; step < c.batch_sizes.size(); ++step) {
    const int64_t size = c.batch_sizes[step];
    auto batch = global_batch(static_cast<int>(step), size);
    const int64_t begin = size * r / n, end = size * (r + 1) / n;
    session.train_step(rows(batch, begin, end));
    reference.train_step(batch);
  }
  EXPECT_EQ(session.step(), reference.step());
  for (const auto& name : session.trainable()) {
    const double error = test::scaled_error(session.parameter(name), reference.parameter(name));
    EXPECT_LT(error, 2e-6) << c.optimizer << " " << name << " on rank " << r;
  }
}

TEST(SessionMpi, SgdEqualsOneProcessWithTheJoinedBatch) {
  expect_same_as_one_process({.optimizer = "sgd", .batch_sizes = {8, 8, 8, 8, 8}});
}

TEST(SessionMpi, AdamEqualsOneProcessWithTheJoinedBatch) {
  expect_same_as_one_process({.optimizer = "adam", .batch_sizes = {8, 8, 8, 8, 8}});
}

TEST(SessionMpi, UnevenSlicesAreWeightedBySize) {
  // 7 rows: rank 0 gets 3, rank 1 gets 4; a plain average of the two means would differ.
  expect_same_as_one_process({.optimizer = "sgd", .batch_sizes = {7, 8, 5, 8, 3}});
}

TEST(SessionMpi, AccumulationReducesOnlyAtTheOptimizerStep) {
  expect_same_as_one_process({.optimizer = "adam", .batch_sizes = {8, 6, 8, 4, 8, 8}, .accumulate = 2});
}

TEST(SessionMpi, EveryRankStartsFromRankZerosState) {
  Distributed& world = Distributed::world();
  Model model = Model::from_text(kMlp);
  TrainingSession session(model, options_for("sgd"));
  Tensor w = session.parameter("W1");
  w.data<float>()[0] = static_cast<float>(world.rank() + 10);
  session.set_parameter("W1", w);
  session.set_distributed(world);
  EXPECT_EQ(session.parameter("W1").data<float>()[0], 10.f) << "rank " << world.rank();
}

TEST(SessionMpi, ANonFiniteLossOnOneRankStopsEveryRank) {
  Distributed& world = Distributed::world();
  Model model = Model::from_text(kMlp);
  TrainingSession session(model, options_for("sgd"));
  session.set_distributed(world);
  auto batch = rows(global_batch(0, 8), 4 * world.rank(), 4 * world.rank() + 4);
  if (world.rank() == 1) batch["X"].data<float>()[0] = std::nanf("");
  const Tensor before = session.parameter("W2");
  EXPECT_THROW(session.train_step(batch), NonFiniteLoss) << "rank " << world.rank();
  test::expect_close(session.parameter("W2"), before, 0, 0);
}

// Conv -> training-mode BatchNorm -> Relu -> pooling -> Gemm: batch statistics matter.
const char* const kBnNet = R"(
  <ir_version: 8, opset_import: ["" : 15]>
  g (float[N, 2, 4, 4] X) => (float[N, 3] Y)
  <float[3, 2, 3, 3] W = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2, 0.3, -0.1, 0.2, 0.5, 0.4, -0.3,
                          0.2, 0.1, -0.4, 0.3, 0.6, -0.5, 0.1, 0.2, -0.3, 0.5, 0.1, 0.2, -0.4, 0.3, 0.7, 0.2, -0.2, 0.1,
                          0.3, -0.3, 0.2, 0.1, 0.5, -0.1, 0.4, 0.2, -0.5, 0.1, 0.3, 0.2, -0.2, 0.6, 0.1, -0.3, 0.2, 0.4},
   float[3] S = {1.0, 0.8, 1.2}, float[3] B = {0.1, -0.1, 0.0}, float[3] M = {0, 0, 0}, float[3] V = {1, 1, 1},
   float[3, 3] G = {0.2, -0.1, 0.4, 0.3, 0.6, -0.5, 0.1, 0.2, -0.3}, float[3] c = {0.0, 0.1, -0.1}>
  {
    C = Conv <pads = [1, 1, 1, 1]> (X, W)
    Z, RM, RV = BatchNormalization <training_mode = 1> (C, S, B, M, V)
    A = Relu(Z)
    P = GlobalAveragePool(A)
    F = Flatten(P)
    Y = Gemm(F, G, c)
  }
)";

std::map<std::string, Tensor> image_batch(int step, int64_t n) {
  std::mt19937 rng(2000 + step);
  std::normal_distribution<float> normal;
  std::vector<float> x(n * 32), y(n * 3);
  for (float& v : x) v = normal(rng) + 0.5f;
  for (float& v : y) v = normal(rng);
  return {{"X", Tensor::from_vector<float>({n, 2, 4, 4}, x)}, {"label", Tensor::from_vector<float>({n, 3}, y)}};
}

// The largest scaled distance between the BN net trained on two ranks (each with half of
// every batch of 8) and in one process, after 5 SGD steps.
double bn_net_distance(bool sync) {
  Distributed& world = Distributed::world();
  const int r = world.rank(), n = world.size();
  TrainingOptions options = options_for("sgd");
  options.sync_batchnorm = sync;
  Model model = Model::from_text(kBnNet), reference_model = Model::from_text(kBnNet);
  TrainingSession session(model, options), reference(reference_model, options);
  session.set_distributed(world);
  for (int step = 0; step < 5; ++step) {
    auto batch = image_batch(step, 8);
    session.train_step(rows(batch, 8 * r / n, 8 * (r + 1) / n));
    reference.train_step(batch);
  }
  double worst = 0;
  for (const auto& name : session.trainable())
    worst = std::max(worst, test::scaled_error(session.parameter(name), reference.parameter(name)));
  // The running statistics follow the global batch too.
  for (const char* name : {"M", "V"})
    if (sync) worst = std::max(worst, test::scaled_error(session.parameter(name), reference.parameter(name)));
  return worst;
}

TEST(SessionMpi, SyncBatchNormEqualsOneProcessWithTheJoinedBatch) {
  EXPECT_LT(bn_net_distance(true), 2e-6) << "rank " << Distributed::world().rank();
}

TEST(SessionMpi, LocalBatchNormDiffersFromOneProcess) {
  // Without synchronization each rank normalises by its own half: the check above can fail.
  EXPECT_GT(bn_net_distance(false), 1e-3) << "rank " << Distributed::world().rank();
}

}  // namespace
}  // namespace onnxtrain
