// Pooling behaviour the reference comparison does not reach: AveragePool's ceil_mode window
// divisors on fixed values, LpPool, MaxPool's indices output, MaxUnpool errors.
// tests/reference/pool_reference_test.cpp covers random configurations and the *PoolGrad ops.
#include <gtest/gtest.h>

#include "onnxtrain/onnxtrain.h"
#include "tests/reference/reference_support.h"

using namespace onnxtrain;
using test::run_node;

TEST(Pool, AveragePoolCeilModeCountsOnlyThePaddedInput) {
  // 1x1x5 input, kernel 2, stride 2, pad 1 each side, ceil_mode: windows [-1,0], [1,2], [3,4]
  // and nothing past the end pad; count_include_pad divides by the padded-window part.
  Tensor x = Tensor::from_vector<float>({1, 1, 5}, {1, 2, 3, 4, 5});
  auto y = run_node("AveragePool", "kernel_shape = [2], strides = [2], pads = [1, 1], ceil_mode = 1, count_include_pad = 1",
                    {{"X", x}}, 3)["Y"];
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{0.5f, 2.5f, 4.5f}));
  Tensor x6 = Tensor::from_vector<float>({1, 1, 6}, {1, 2, 3, 4, 5, 6});
  auto y6 = run_node("AveragePool", "kernel_shape = [3], strides = [2], ceil_mode = 1, count_include_pad = 1",
                     {{"X", x6}}, 3)["Y"];
  EXPECT_EQ(y6.to_vector<float>(), (std::vector<float>{2, 4, 5.5f}));  // last window has 2 of 3 points
}

TEST(Pool, LpPoolTakesThePNormOfEachWindow) {
  Tensor x = Tensor::from_vector<float>({1, 1, 4}, {3, -4, 0, 1});
  auto y = run_node("LpPool", "kernel_shape = [2], p = 2", {{"X", x}}, 3)["Y"];
  EXPECT_EQ(y.to_vector<float>(), (std::vector<float>{5, 4, 1}));
}

TEST(Pool, MaxPoolIndicesFollowStorageOrder) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 3}, {1, 9, 2, 8, 3, 7});
  for (int order : {0, 1}) {
    Model model = Model::from_text(R"(
      <ir_version: 8, opset_import: ["" : 17]>
      g (float[1, 1, 2, 3] X) => (float[1, 1, 1, 2] Y, int64[1, 1, 1, 2] I) {
        Y, I = MaxPool <kernel_shape = [2, 2], storage_order = )" + std::to_string(order) + R"(> (X)
      })");
    InferenceSession session(model);
    auto out = session.run({{"X", x}});
    EXPECT_EQ(out["Y"].to_vector<float>(), (std::vector<float>{9, 9}));
    // 9 sits at (h=0, w=1): row-major 1, column-major 0 + 1 * 2 = 2
    EXPECT_EQ(out["I"].to_vector<int64_t>(), (std::vector<int64_t>{order ? 2 : 1, order ? 2 : 1}));
  }
}

TEST(Pool, MaxUnpoolIndexOutOfRangeGivesAClearError) {
  Tensor x = Tensor::from_vector<float>({1, 1, 1, 1}, {1});
  Tensor bad = Tensor::from_vector<int64_t>({1, 1, 1, 1}, {99});
  EXPECT_THROW(run_node("MaxUnpool", "kernel_shape = [2, 2], strides = [2, 2]", {{"X", x}, {"I", bad}}, 4), Error);
}
