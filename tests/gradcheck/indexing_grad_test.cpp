// Gradient checks for the indexing family: Gather*, Scatter*, Trilu, ReverseSequence,
// Compress, OneHot, and the not-differentiable generators. Index tensors have repeated and
// negative entries throughout, so scatter-adds accumulate and indices wrap.
#include <gtest/gtest.h>

#include <random>

#include "tests/support/gradcheck.h"
#include "tests/support/node_case.h"

using namespace onnxtrain;
using onnxtrain::test::GradCase;
using onnxtrain::test::model_header;

namespace {

Tensor ints(const Shape& shape, std::vector<int64_t> values) { return Tensor::from_vector<int64_t>(shape, values); }

// Random indices in [-dim, dim) (negative ones wrap), with repeats for small dims.
Tensor random_indices(const Shape& shape, int64_t dim, uint64_t seed) {
  Tensor t(DType::Int64, shape);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> dist(-dim, dim - 1);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<int64_t>()[i] = dist(rng);
  return t;
}

Tensor dbl(const Shape& shape, uint64_t seed) { return test::random_tensor(DType::Double, shape, seed); }

// ----------------------------------------------------------------- Gather

struct GatherCase {
  std::string name;
  int opset;
  Shape data;
  Tensor indices;
  int64_t axis;
  std::string data_text, idx_text, y_text;
};

void PrintTo(const GatherCase& c, std::ostream* os) { *os << c.name; }

class IndexingGather : public ::testing::TestWithParam<GatherCase> {};

TEST_P(IndexingGather, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = model_header(p.opset) + "g (double" + p.data_text + " X, int64" + p.idx_text + " I) => (double" + p.y_text +
                 " Y) { Y = Gather<axis = " + std::to_string(p.axis) + ">(X, I) }";
  c.inputs = {{"X", dbl(p.data, 1)}, {"I", p.indices}};
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IndexingGather,
    ::testing::Values(
        GatherCase{"axis0_repeats", 13, {5, 3}, ints({2, 3}, {0, 4, -1, 0, 2, -5}), 0, "[5,3]", "[2,3]", "[2,3,3]"},
        GatherCase{"axis1", 13, {2, 4, 3}, ints({5}, {3, -1, 0, 3, 1}), 1, "[2,4,3]", "[5]", "[2,5,3]"},
        GatherCase{"axis_last_neg", 11, {3, 4}, ints({2, 2}, {-1, 3, 0, 0}), -1, "[3,4]", "[2,2]", "[3,2,2]"},
        GatherCase{"scalar_index", 13, {4, 3}, ints({}, {-2}), 0, "[4,3]", "", "[3]"},
        GatherCase{"opset1_1d", 9, {6}, ints({7}, {5, 5, -6, 0, 2, -1, 1}), 0, "[6]", "[7]", "[7]"},
        // Large enough for the parallel scatter-add (>= 65536 elements of work).
        GatherCase{"parallel", 13, {1200, 64}, random_indices({16, 32}, 1200, 5), 0, "[1200,64]", "[16,32]",
                   "[16,32,64]"}));

// Embeddings in float32: data [vocab, dim], indices [batch, seq].
TEST(IndexingGather, EmbeddingFloat32) {
  GradCase c;
  c.model_text = model_header(13) +
                 "g (float[64,16] E, int64[4,32] I) => (float[4,32,16] Y) { Y = Gather<axis = 0>(E, I) }";
  c.inputs = {{"E", test::random_tensor(DType::Float, {64, 16}, 3)}, {"I", random_indices({4, 32}, 64, 9)}};
  c.four_point = true;
  c.max_elements = 128;
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(IndexingGather, EmbeddingFloat32Parallel) {
  GradCase c;
  c.model_text = model_header(13) +
                 "g (float[100,700] E, int32[8,16] I) => (float[8,16,700] Y) { Y = Gather<axis = 0>(E, I) }";
  // int32 indices into the first 40 rows only (many repeats, untouched rows get zeros).
  Tensor idx(DType::Int32, {8, 16});
  std::mt19937_64 rng(4);
  for (int64_t i = 0; i < idx.numel(); ++i) idx.data<int32_t>()[i] = static_cast<int32_t>(rng() % 40);
  c.inputs = {{"E", test::random_tensor(DType::Float, {100, 700}, 3)}, {"I", idx}};
  c.four_point = true;
  c.max_elements = 96;
  EXPECT_EQ(test::check_gradients(c), "");
}

// --------------------------------------------------------- GatherElements

struct ElementsCase {
  std::string name;
  Shape data;
  Tensor indices;
  int64_t axis;
  std::string data_text, idx_text;
};

void PrintTo(const ElementsCase& c, std::ostream* os) { *os << c.name; }

class IndexingGatherElements : public ::testing::TestWithParam<ElementsCase> {};

TEST_P(IndexingGatherElements, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = model_header(13) + "g (double" + p.data_text + " X, int64" + p.idx_text + " I) => (double" + p.idx_text +
                 " Y) { Y = GatherElements<axis = " + std::to_string(p.axis) + ">(X, I) }";
  c.inputs = {{"X", dbl(p.data, 1)}, {"I", p.indices}};
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IndexingGatherElements,
    ::testing::Values(ElementsCase{"axis0", {3, 4}, random_indices({5, 4}, 3, 1), 0, "[3,4]", "[5,4]"},
                      ElementsCase{"axis1", {3, 4}, random_indices({2, 6}, 4, 2), 1, "[3,4]", "[2,6]"},
                      ElementsCase{"axis_last_rank3", {2, 3, 4}, random_indices({2, 2, 5}, 4, 3), -1, "[2,3,4]",
                                   "[2,2,5]"},
                      ElementsCase{"axis1_rank3_smaller", {2, 3, 4}, random_indices({1, 5, 3}, 3, 4), 1, "[2,3,4]",
                                   "[1,5,3]"},
                      ElementsCase{"parallel", {8, 64, 40}, random_indices({8, 96, 40}, 64, 5), 1, "[8,64,40]",
                                   "[8,96,40]"}));

// --------------------------------------------------------------- GatherND

struct NdCase {
  std::string name;
  int opset;
  Shape data;
  Tensor indices;
  int64_t batch_dims;
  std::string data_text, idx_text, y_text;
};

void PrintTo(const NdCase& c, std::ostream* os) { *os << c.name; }

class IndexingGatherND : public ::testing::TestWithParam<NdCase> {};

TEST_P(IndexingGatherND, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  const std::string attrs = p.opset >= 12 ? "<batch_dims = " + std::to_string(p.batch_dims) + ">" : "";
  c.model_text = model_header(p.opset) + "g (double" + p.data_text + " X, int64" + p.idx_text + " I) => (double" + p.y_text +
                 " Y) { Y = GatherND" + attrs + "(X, I) }";
  c.inputs = {{"X", dbl(p.data, 1)}, {"I", p.indices}};
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IndexingGatherND,
    ::testing::Values(
        NdCase{"elements", 13, {3, 4}, ints({5, 2}, {0, 1, -1, -1, 0, 1, 2, 3, 2, -1}), 0, "[3,4]", "[5,2]", "[5]"},
        NdCase{"slices", 13, {3, 4, 2}, ints({2, 3, 1}, {0, -1, 2, 0, 1, 0}), 0, "[3,4,2]", "[2,3,1]", "[2,3,4,2]"},
        NdCase{"opset11", 11, {3, 4, 2}, ints({4, 2}, {0, 1, 0, 1, -3, -1, 2, 0}), 0, "[3,4,2]", "[4,2]", "[4,2]"},
        NdCase{"batch1_slices", 13, {2, 3, 4}, ints({2, 5, 1}, {0, 2, -1, 0, 1, 1, 1, -3, 0, 2}), 1, "[2,3,4]",
               "[2,5,1]", "[2,5,4]"},
        NdCase{"batch1_elements", 13, {2, 3, 4}, ints({2, 3, 2}, {0, 1, 0, 1, -1, 3, 1, 0, 1, 0, 2, -4}), 1,
               "[2,3,4]", "[2,3,2]", "[2,3]"},
        NdCase{"batch2", 13, {2, 2, 3, 2}, ints({2, 2, 2, 1}, {0, 0, 2, -1, 1, 1, 0, 2}), 2, "[2,2,3,2]",
               "[2,2,2,1]", "[2,2,2,2]"}));

// ---------------------------------------------------- ScatterElements etc.

struct ScatterCase {
  std::string name;
  std::string op;  // ScatterElements, Scatter, ScatterND
  int opset;
  std::string attrs;
  Shape data, updates;
  Tensor indices;
  std::string data_text, idx_text, upd_text;
};

void PrintTo(const ScatterCase& c, std::ostream* os) { *os << c.name; }

class IndexingScatter : public ::testing::TestWithParam<ScatterCase> {};

TEST_P(IndexingScatter, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = model_header(p.opset) + "g (double" + p.data_text + " X, int64" + p.idx_text + " I, double" + p.upd_text +
                 " U) => (double" + p.data_text + " Y) { Y = " + p.op + p.attrs + "(X, I, U) }";
  // Products of several updates stay well-conditioned with values away from zero.
  c.inputs = {{"X", test::random_away_from(DType::Double, p.data, 1, {0.0}, 0.2, -1.5, 1.5)},
              {"I", p.indices},
              {"U", test::random_away_from(DType::Double, p.updates, 2, {0.0}, 0.2, -1.5, 1.5)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

std::vector<ScatterCase> scatter_cases() {
  std::vector<ScatterCase> out;
  // Repeated positions along each line: with 'none' only the last write counts.
  const Tensor dup0 = ints({3, 3}, {0, 2, -1, 1, 2, 1, 0, -3, 2});   // axis 0 into [4,3]
  const Tensor dup1 = ints({2, 4}, {1, -1, 1, 0, 3, 3, -4, 2});      // axis 1 into [3,4]
  for (std::string red : {"none", "add", "mul"}) {
    const std::string r = red == "none" ? "" : ", reduction = \"" + red + "\"";
    out.push_back({"elements_axis0_" + red, "ScatterElements", 16, "<axis = 0" + r + ">", {4, 3}, {3, 3}, dup0,
                   "[4,3]", "[3,3]", "[3,3]"});
    out.push_back({"elements_axis_neg1_" + red, "ScatterElements", 16, "<axis = -1" + r + ">", {3, 4}, {2, 4}, dup1,
                   "[3,4]", "[2,4]", "[2,4]"});
    out.push_back({"elements_rank3_axis1_" + red, "ScatterElements", 16, "<axis = 1" + r + ">", {2, 3, 4}, {2, 5, 3},
                   random_indices({2, 5, 3}, 3, 7), "[2,3,4]", "[2,5,3]", "[2,5,3]"});
    // ScatterND: slices (k = 1) and elements (k = 2), with duplicates.
    const std::string nr = red == "none" ? "" : "<reduction = \"" + red + "\">";
    out.push_back({"nd_slices_" + red, "ScatterND", 16, nr, {4, 3}, {3, 3}, ints({3, 1}, {1, -3, 3}), "[4,3]",
                   "[3,1]", "[3,3]"});
    out.push_back({"nd_elements_" + red, "ScatterND", 16, nr, {3, 4}, {5}, ints({5, 2}, {0, 1, 2, 3, 0, -3, 1, 1, -1, 3}),
                   "[3,4]", "[5,2]", "[5]"});
    out.push_back({"nd_rank3_" + red, "ScatterND", 16, nr, {2, 3, 4}, {2, 2, 4},
                   ints({2, 2, 2}, {0, 1, 1, 2, -2, -2, 1, 2}), "[2,3,4]", "[2,2,2]", "[2,2,4]"});
  }
  // Opset forms before 'reduction' existed, and the deprecated Scatter.
  out.push_back({"elements_opset11", "ScatterElements", 11, "<axis = 1>", {3, 4}, {2, 4}, dup1, "[3,4]", "[2,4]",
                 "[2,4]"});
  out.push_back({"nd_opset11", "ScatterND", 11, "", {4, 3}, {3, 3}, ints({3, 1}, {1, -3, 3}), "[4,3]", "[3,1]",
                 "[3,3]"});
  out.push_back({"scatter_opset10", "Scatter", 10, "<axis = 0>", {4, 3}, {3, 3}, ints({3, 3}, {0, 2, 3, 1, 2, 1, 0, 1, 2}),
                 "[4,3]", "[3,3]", "[3,3]"});
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, IndexingScatter, ::testing::ValuesIn(scatter_cases()));

// Exact zeros among multiplied updates: the prefix/suffix products need no division.
TEST(IndexingScatter, MulWithZeroUpdates) {
  GradCase c;
  c.model_text = model_header(16) +
                 "g (double[3] X, int64[4] I, double[4] U) => (double[3] Y) "
                 "{ Y = ScatterElements<axis = 0, reduction = \"mul\">(X, I, U) }";
  c.inputs = {{"X", Tensor::from_vector<double>({3}, {0.7, -1.2, 0.4})},
              {"I", ints({4}, {1, 1, -2, 0})},
              {"U", Tensor::from_vector<double>({4}, {0.0, 1.3, -0.8, 0.0})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// ------------------------------------------------------------------ Trilu

struct TriluCase {
  std::string name;
  Shape shape;
  std::string shape_text;
  int64_t upper;
  int64_t k;  // INT64_MIN: no k input
};

void PrintTo(const TriluCase& c, std::ostream* os) { *os << c.name; }

class IndexingTrilu : public ::testing::TestWithParam<TriluCase> {};

TEST_P(IndexingTrilu, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  const bool has_k = p.k != INT64_MIN;
  c.model_text = model_header(14) + "g (double" + p.shape_text + " X" + (has_k ? ", int64 K" : "") + ") => (double" +
                 p.shape_text + " Y) { Y = Trilu<upper = " + std::to_string(p.upper) + ">(X" + (has_k ? ", K" : "") +
                 ") }";
  c.inputs = {{"X", dbl(p.shape, 1)}};
  if (has_k) c.inputs["K"] = Tensor::scalar<int64_t>(p.k);
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(Cases, IndexingTrilu,
                         ::testing::Values(TriluCase{"upper", {4, 4}, "[4,4]", 1, INT64_MIN},
                                           TriluCase{"lower", {4, 5}, "[4,5]", 0, INT64_MIN},
                                           TriluCase{"upper_k1_batched", {2, 3, 4}, "[2,3,4]", 1, 1},
                                           TriluCase{"lower_kneg1_batched", {2, 4, 3}, "[2,4,3]", 0, -1},
                                           TriluCase{"upper_kneg2", {5, 3}, "[5,3]", 1, -2}));

// -------------------------------------------------------- ReverseSequence

TEST(IndexingReverseSequence, TimeMajor) {
  GradCase c;
  c.model_text = model_header(10) +
                 "g (double[4,3,2] X, int64[3] L) => (double[4,3,2] Y) "
                 "{ Y = ReverseSequence<batch_axis = 1, time_axis = 0>(X, L) }";
  c.inputs = {{"X", dbl({4, 3, 2}, 1)}, {"L", ints({3}, {4, 0, 2})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

TEST(IndexingReverseSequence, BatchMajor) {
  GradCase c;
  c.model_text = model_header(10) +
                 "g (double[3,5] X, int64[3] L) => (double[3,5] Y) "
                 "{ Y = ReverseSequence<batch_axis = 0, time_axis = 1>(X, L) }";
  c.inputs = {{"X", dbl({3, 5}, 1)}, {"L", ints({3}, {1, 5, 3})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// ---------------------------------------------------------------- Compress

struct CompressCase {
  std::string name;
  Shape shape;
  std::string shape_text;
  std::vector<bool> condition;
  std::string axis;  // "" = flatten
  std::string y_text;
};

void PrintTo(const CompressCase& c, std::ostream* os) { *os << c.name; }

class IndexingCompress : public ::testing::TestWithParam<CompressCase> {};

TEST_P(IndexingCompress, MatchesFiniteDifferences) {
  const auto& p = GetParam();
  GradCase c;
  const std::string attrs = p.axis.empty() ? "" : "<axis = " + p.axis + ">";
  c.model_text = model_header(11) + "g (double" + p.shape_text + " X, bool[" + std::to_string(p.condition.size()) +
                 "] C) => (double" + p.y_text + " Y) { Y = Compress" + attrs + "(X, C) }";
  Tensor cond(DType::Bool, {static_cast<int64_t>(p.condition.size())});
  for (size_t i = 0; i < p.condition.size(); ++i) cond.data<bool>()[i] = p.condition[i];
  c.inputs = {{"X", dbl(p.shape, 1)}, {"C", cond}};
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IndexingCompress,
    ::testing::Values(CompressCase{"axis0", {4, 3}, "[4,3]", {true, false, true, true}, "0", "[3,3]"},
                      CompressCase{"axis_neg1_short_condition", {2, 3, 4}, "[2,3,4]", {false, true, true}, "-1", "[2,3,2]"},
                      CompressCase{"axis1_long_condition", {2, 3, 2}, "[2,3,2]", {true, false, true, false, false}, "1", "[2,2,2]"},
                      CompressCase{"flatten", {2, 3}, "[2,3]", {true, false, false, true, true}, "", "[3]"}));

// ------------------------------------------------------------------ OneHot

struct OneHotCase {
  std::string name;
  int opset;
  Tensor indices;
  std::string idx_text;
  int64_t depth;
  int64_t axis;
  std::string y_text;
};

void PrintTo(const OneHotCase& c, std::ostream* os) { *os << c.name; }

class IndexingOneHot : public ::testing::TestWithParam<OneHotCase> {};

TEST_P(IndexingOneHot, ValuesGradient) {
  const auto& p = GetParam();
  GradCase c;
  c.model_text = model_header(p.opset) + "g (int64" + p.idx_text + " I, int64 D, double[2] V) => (double" + p.y_text + " Y) { Y = OneHot<axis = " +
                 std::to_string(p.axis) + ">(I, D, V) }";
  c.inputs = {{"I", p.indices}, {"D", Tensor::scalar<int64_t>(p.depth)}, {"V", Tensor::from_vector<double>({2}, {-0.3, 0.8})}};
  EXPECT_EQ(test::check_gradients(c), "");
}

INSTANTIATE_TEST_SUITE_P(
    Cases, IndexingOneHot,
    ::testing::Values(
        // -1 wraps (opset 11); 7 is out of range and hits nothing.
        OneHotCase{"last_axis", 11, ints({2, 3}, {0, 4, -1, 2, 7, 2}), "[2,3]", 5, -1, "[2,3,5]"},
        OneHotCase{"axis0", 11, ints({4}, {1, 1, -2, 0}), "[4]", 3, 0, "[3,4]"},
        OneHotCase{"axis1_opset9", 9, ints({2, 2}, {3, -1, 0, 2}), "[2,2]", 4, 1, "[2,4,2]"}));

// ------------------------------------------------- not differentiable ops

// EyeLike's output does not depend on X's values: only the Mul path carries a gradient.
TEST(IndexingNotDifferentiable, EyeLikeStopsGradient) {
  GradCase c;
  c.model_text = model_header(13) + "g (double[3,4] X) => (double[3,4] Y) { E = EyeLike<k = 1>(X) Y = Mul(X, E) }";
  c.inputs = {{"X", dbl({3, 4}, 1)}};
  EXPECT_EQ(test::check_gradients(c), "");
}

// NonZero feeding a Gather: the indices branch carries no gradient, the data one does.
TEST(IndexingNotDifferentiable, NonZeroIndices) {
  GradCase c;
  c.model_text = model_header(13) +
                 "g (double[6] X, int64[1] S) => (double[K] Y) { N = NonZero(X) F = Reshape(N, S) Y = Gather<axis = 0>(X, F) }";
  c.inputs = {{"X", test::random_away_from(DType::Double, {6}, 1, {0.0}, 0.1)}, {"S", ints({1}, {-1})}};
  c.wrt = {"X"};
  EXPECT_EQ(test::check_gradients(c), "");
}

}  // namespace
