// oneDNN primitives made with ops::arena_scratchpad() take their scratchpad from the scratch
// arena, which ops::execute() passes them: the results equal the library-managed mode's,
// and each call's attributes are a separate object (a caller's post-ops stay its own).
#include <gtest/gtest.h>

#include <vector>

#include "ops/dnnl_utils.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

TEST(ArenaScratchpad, EachCallIsItsOwnAttributeObject) {
  dnnl::primitive_attr mine = ops::arena_scratchpad();
  dnnl::post_ops relu;
  relu.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, 0.f, 0.f);
  mine.set_post_ops(relu);
  const dnnl::primitive_attr other = ops::arena_scratchpad();
  EXPECT_EQ(other.get_post_ops().len(), 0);
  EXPECT_EQ(other.get_scratchpad_mode(), dnnl::scratchpad_mode::user);
  EXPECT_EQ(mine.get_scratchpad_mode(), dnnl::scratchpad_mode::user);
}

// A 3x3 convolution whose kernel needs a scratchpad (Winograd on AVX-512; elsewhere oneDNN's
// choice for plain layouts, which is gemm with an im2col buffer).
TEST(ArenaScratchpad, APrimitiveGetsItsScratchpadFromTheArena) {
  const dnnl::memory::dims x{2, 64, 16, 16}, w{64, 64, 3, 3};
  const auto f32 = dnnl::memory::data_type::f32;
  const dnnl::memory::desc x_md(x, f32, dnnl::memory::format_tag::nchw), w_md(w, f32, dnnl::memory::format_tag::oihw);
  auto desc = [&](dnnl::algorithm alg) {
    return dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg, x_md, w_md, x_md, {1, 1}, {1, 1},
                                           {1, 1});
  };
  dnnl::convolution_forward::primitive_desc arena_pd, library_pd;
  try {
    arena_pd = {desc(dnnl::algorithm::convolution_winograd), ops::arena_scratchpad(), ops::cpu_engine()};
    library_pd = {desc(dnnl::algorithm::convolution_winograd), ops::cpu_engine()};
  } catch (const dnnl::error&) {
    arena_pd = {desc(dnnl::algorithm::convolution_direct), ops::arena_scratchpad(), ops::cpu_engine()};
    library_pd = {desc(dnnl::algorithm::convolution_direct), ops::cpu_engine()};
  }
  const size_t scratchpad_bytes = arena_pd.scratchpad_desc().get_size();
  if (scratchpad_bytes == 0) GTEST_SKIP() << "oneDNN's kernel here (" << arena_pd.impl_info_str() << ") needs no scratchpad";

  const std::vector<double> src64 = test::random_values(2 * 64 * 16 * 16, -1, 1, 1);
  const std::vector<double> weights64 = test::random_values(64 * 64 * 9, -0.1, 0.1, 2);
  std::vector<float> src(src64.begin(), src64.end()), weights(weights64.begin(), weights64.end());
  std::vector<float> arena_out(src.size()), library_out(src.size());
  dnnl::memory s(x_md, ops::cpu_engine(), src.data()), wt(w_md, ops::cpu_engine(), weights.data());
  dnnl::memory a(x_md, ops::cpu_engine(), arena_out.data()), l(x_md, ops::cpu_engine(), library_out.data());

  ops::scratch_arena().reset();
  ops::execute(dnnl::convolution_forward(arena_pd), {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, wt}, {DNNL_ARG_DST, a}});
  EXPECT_GE(ops::scratch_arena().capacity(), scratchpad_bytes) << "the scratchpad did not come from the arena";
  ops::scratch_arena().reset();
  ops::execute(dnnl::convolution_forward(library_pd), {{DNNL_ARG_SRC, s}, {DNNL_ARG_WEIGHTS, wt}, {DNNL_ARG_DST, l}});
  EXPECT_EQ(arena_out, library_out) << arena_pd.impl_info_str();
}

}  // namespace
