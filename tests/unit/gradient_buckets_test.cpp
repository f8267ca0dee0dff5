// The pieces of data-parallel training that work in one process: the executor's fetch
// hook (which starts each gradient bucket's allreduce during the backward run) and the
// bucket packing (a world of one process sums nothing, so only the scaling shows).
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include "graph/importer.h"
#include "src/executor.h"
#include "src/gradient_buckets.h"
#include "tests/support/test_support.h"

namespace onnxtrain {
namespace {

TEST(FetchHook, ReportsEachFetchedValueAsItsStepProducesIt) {
  onnx::ModelProto proto;
  graph::load_model_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[2] X) => (float[2] Y)
    { A = Relu(X) B = Neg(A) Y = Add(B, X) }
  )", proto);
  auto g = graph::import_graph(proto, graph::ImportOptions{});
  Executor executor(*g);
  std::vector<std::pair<size_t, std::vector<float>>> seen;
  executor.set_fetch_hook([&](size_t f, const Tensor& v) { seen.push_back({f, v.to_vector<float>()}); });
  // Y is fetched twice; X is fed, so no step produces it and it is not reported.
  auto out = executor.run({{"X", Tensor::from_vector<float>({2}, {1, -2})}}, {"Y", "A", "X", "Y"});
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].first, 1u);  // A first: the order in which steps run
  EXPECT_EQ(seen[0].second, (std::vector<float>{1, 0}));
  EXPECT_EQ(seen[1].first, 0u);
  EXPECT_EQ(seen[2].first, 3u);
  EXPECT_EQ(seen[1].second, out[0].to_vector<float>());
  executor.set_fetch_hook(nullptr);
  seen.clear();
  executor.run({{"X", Tensor::from_vector<float>({2}, {1, -2})}}, {"Y"});
  EXPECT_TRUE(seen.empty());
}

TEST(GradientBuckets, ScalesAndReturnsEveryGradientAcrossBuckets) {
  // 16-byte buckets, filled from the last gradient: {3, 2} (20 bytes), {1} (double), {0}.
  GradientBuckets buckets(Distributed::world(), {DType::Float, DType::Double, DType::Float, DType::Float},
                          {3, 2, 4, 1}, 16);
  EXPECT_EQ(buckets.bucket_count(), 3u);
  std::vector<Tensor> grads = {Tensor::from_vector<float>({3}, {1, 2, 3}), Tensor::from_vector<double>({2}, {4, 5}),
                               Tensor::from_vector<float>({2, 2}, {6, 7, 8, 9}), Tensor::from_vector<float>({1}, {10})};
  buckets.begin(0.5);
  buckets.ready(2, grads[2]);
  grads[2].data<float>()[0] = 100;  // packed when reported: later changes do not count
  buckets.finish(grads);
  EXPECT_EQ(grads[0].to_vector<float>(), (std::vector<float>{0.5, 1, 1.5}));
  EXPECT_EQ(grads[1].to_vector<double>(), (std::vector<double>{2, 2.5}));
  EXPECT_EQ(grads[2].to_vector<float>(), (std::vector<float>{3, 3.5, 4, 4.5}));
  EXPECT_EQ(grads[3].to_vector<float>(), (std::vector<float>{5}));
}

TEST(GradientBuckets, RefusesOtherDtypes) {
  test::expect_error([] { GradientBuckets(Distributed::world(), {DType::Float16}, {4}); }, "float16");
}

}  // namespace
}  // namespace onnxtrain
