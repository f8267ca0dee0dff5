// Unit tests of the building blocks behind `onnxtrain train`/`eval`: library metrics,
// progress output, SVG charts, run directory files and Ctrl-C handling.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>
#include <thread>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"
#include "tools/cli/interrupt.h"
#include "tools/cli/progress.h"
#include "tools/cli/run_dir.h"
#include "tools/cli/svg.h"

using namespace onnxtrain;
using namespace onnxtrain::cli;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

Tensor scores(Shape shape, std::vector<float> v) { return Tensor::from_vector<float>(std::move(shape), v); }
Tensor labels(Shape shape, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(std::move(shape), v); }

using test::error_of;

// ---------------------------------------------------------------- metrics

TEST(Metrics, AccuracyTakesTheFirstMaximumOnTies) {
  TopKAccuracy acc;
  // Row 0 ties classes 1 and 2: numpy.argmax says 1. Row 2 ties all: 0.
  acc.update(scores({4, 3}, {0, 3, 3, 0, 3, 3, 1, 1, 1, 5, 0, 0}), labels({4}, {1, 2, 0, 0}));
  EXPECT_EQ(acc.correct(), 3);
  EXPECT_EQ(acc.count(), 4);
  EXPECT_DOUBLE_EQ(acc.value(), 0.75);
}

TEST(Metrics, AccuracyAccumulatesSkipsIgnoredAndResets) {
  TopKAccuracy acc(1, -1);
  EXPECT_TRUE(std::isnan(acc.value()));
  acc.update(scores({2, 2}, {1, 0, 0, 1}), Tensor::from_vector<int32_t>({2}, {0, -1}));
  acc.update(scores({3, 2}, {1, 0, 1, 0, 0, 1}), Tensor::from_vector<int32_t>({3}, {1, 0, -1}));
  EXPECT_EQ(acc.count(), 3);
  EXPECT_NEAR(acc.value(), 2.0 / 3.0, 1e-15);
  acc.reset();
  EXPECT_EQ(acc.count(), 0);
  acc.update(scores({1, 2}, {0, 1}), labels({1}, {-1}));
  EXPECT_TRUE(std::isnan(acc.value())) << "every target ignored";
}

TEST(Metrics, AccuracyOverSpatialPositionsInDouble) {
  // [N=2, C=2, d=3]: predictions per position are (0,1,0) and (1,1,0).
  Tensor out = Tensor::from_vector<double>({2, 2, 3}, {5, 0, 5, 1, 2, 1, 0, 0, 9, 1, 1, 0});
  TopKAccuracy acc;
  acc.update(out, labels({2, 3}, {0, 1, 1, 1, 0, 0}));
  EXPECT_NEAR(acc.value(), 4.0 / 6.0, 1e-15);
  acc.update(out, labels({2, 1, 3}, {0, 1, 0, 1, 1, 0}));  // keepdim targets
  EXPECT_NEAR(acc.value(), 10.0 / 12.0, 1e-15);
}

TEST(Metrics, NaNScoreIsTheMaximumLikeNumpy) {
  TopKAccuracy acc;
  acc.update(scores({1, 3}, {1, NAN, 2}), labels({1}, {1}));
  EXPECT_EQ(acc.correct(), 1);
}

TEST(Metrics, TopKCountsTiesByClassIndex) {
  TopKAccuracy top2(2), top3(3);
  // Row 0: scores 1,1,1,0 and target 2: classes 0 and 1 tie with it at lower indices.
  // Row 1: target 3 has the second highest score.
  Tensor out = scores({2, 4}, {1, 1, 1, 0, 0.1f, 0.5f, 0.2f, 0.4f});
  top2.update(out, labels({2}, {2, 3}));
  top3.update(out, labels({2}, {2, 3}));
  EXPECT_DOUBLE_EQ(top2.value(), 0.5);
  EXPECT_DOUBLE_EQ(top3.value(), 1.0);
  EXPECT_EQ(top2.name(), "top2");
}

TEST(Metrics, TopKNeedsAtLeastKClasses) {
  TopKAccuracy top5(5);
  std::string msg = error_of([&] { top5.update(scores({2, 3}, {0, 0, 0, 0, 0, 0}), labels({2}, {0, 1})); });
  EXPECT_NE(msg.find("top5 needs at least 5 classes"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2,3]"), std::string::npos) << msg;
}

TEST(Metrics, ClearErrorsLeaveTheStateUnchanged) {
  TopKAccuracy acc;
  acc.update(scores({1, 2}, {1, 0}), labels({1}, {0}));
  std::string msg = error_of([&] { acc.update(scores({4, 3}, std::vector<float>(12)), labels({5}, {0, 0, 0, 0, 0})); });
  EXPECT_NE(msg.find("[4,3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[5]"), std::string::npos) << msg;
  msg = error_of([&] { acc.update(scores({2, 3}, std::vector<float>(6)), labels({2}, {0, 3})); });
  EXPECT_NE(msg.find("target 3"), std::string::npos) << msg;
  msg = error_of([&] { acc.update(scores({2, 3}, std::vector<float>(6)), scores({2}, {0, 1})); });
  EXPECT_NE(msg.find("integer"), std::string::npos) << msg;
  msg = error_of([&] { acc.update(labels({2, 3}, std::vector<int64_t>(6)), labels({2}, {0, 1})); });
  EXPECT_NE(msg.find("float32 or float64"), std::string::npos) << msg;
  msg = error_of([&] { acc.update(scores({3}, {0, 1, 2}), labels({3}, {0, 1, 2})); });
  EXPECT_NE(msg.find("[N, C]"), std::string::npos) << msg;
  EXPECT_EQ(acc.count(), 1);
  EXPECT_DOUBLE_EQ(acc.value(), 1.0);
}

TEST(Metrics, MeanSquaredAndAbsoluteError) {
  MeanError mse(MeanError::Kind::Squared), mae(MeanError::Kind::Absolute);
  Tensor out = scores({2, 2}, {1, 2, 3, 4});
  Tensor target = Tensor::from_vector<double>({2, 2}, {1, 0, 4, 4});  // errors 0, 2, -1, 0
  mse.update(out, target);
  mae.update(out, target);
  EXPECT_DOUBLE_EQ(mse.value(), 5.0 / 4);
  EXPECT_DOUBLE_EQ(mae.value(), 3.0 / 4);
  mse.update(scores({2, 1}, {1, 1}), scores({2}, {0, 3}));  // [N,1] vs [N]: errors 1, -2
  EXPECT_DOUBLE_EQ(mse.value(), 10.0 / 6);
  std::string msg = error_of([&] { mse.update(scores({2, 3}, std::vector<float>(6)), scores({3, 2}, std::vector<float>(6))); });
  EXPECT_NE(msg.find("[2,3]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3,2]"), std::string::npos) << msg;
  EXPECT_EQ(mse.count(), 6);
}

TEST(Metrics, MeanLossWeighsByBatchSize) {
  MeanLoss loss;
  EXPECT_TRUE(std::isnan(loss.value()));
  loss.add(0.5, 32);
  loss.add(1.0, 8);
  EXPECT_DOUBLE_EQ(loss.value(), (0.5 * 32 + 1.0 * 8) / 40);
  EXPECT_THROW(loss.add(1.0, -1), DataError);
}

TEST(Metrics, NamesDirectionAndImprovement) {
  EXPECT_EQ(make_metric("accuracy")->name(), "accuracy");
  EXPECT_EQ(make_metric("ACC")->name(), "accuracy");
  EXPECT_EQ(make_metric("top1")->name(), "accuracy");
  EXPECT_EQ(make_metric("Top5")->name(), "top5");
  EXPECT_EQ(make_metric("mse")->name(), "mse");
  EXPECT_EQ(make_metric("mae")->name(), "mae");
  EXPECT_TRUE(make_metric("top5")->higher_is_better());
  EXPECT_FALSE(make_metric("mse")->higher_is_better());
  for (const char* bad : {"top0", "top", "top5x", "f1", "top99999999999999999999", ""})
    EXPECT_NE(error_of([&] { make_metric(bad); }).find("unknown metric"), std::string::npos) << bad;
  auto acc = make_metric("accuracy");
  auto mse = make_metric("mse");
  EXPECT_TRUE(acc->improves(0.9, 0.8));
  EXPECT_FALSE(acc->improves(0.8, 0.8));
  EXPECT_TRUE(mse->improves(0.1, 0.2));
  EXPECT_TRUE(mse->improves(0.1, kNaN));
  EXPECT_FALSE(mse->improves(kNaN, 0.2));
  // ignore_index reaches the accumulator.
  auto ignoring = make_metric("accuracy", 7);
  ignoring->update(scores({2, 2}, {1, 0, 1, 0}), labels({2}, {0, 7}));
  EXPECT_EQ(ignoring->count(), 1);
}

TEST(Metrics, ConfusionMatrixCountsPrecisionRecall) {
  ConfusionMatrix m(0, {"cat", "dog", "bird"});
  EXPECT_EQ(m.classes(), 3);
  // Predictions 0, 1, 1, 2, 1 for targets 0, 1, 0, 2, -100 (ignored).
  m.update(scores({5, 3}, {9, 0, 0, 0, 9, 0, 0, 9, 0, 0, 0, 9, 0, 9, 0}), labels({5}, {0, 1, 0, 2, -100}));
  EXPECT_EQ(m.total(), 4);
  EXPECT_EQ(m.count(0, 0), 1);
  EXPECT_EQ(m.count(0, 1), 1);
  EXPECT_EQ(m.count(1, 1), 1);
  EXPECT_EQ(m.count(2, 2), 1);
  EXPECT_DOUBLE_EQ(m.precision(1), 0.5);
  EXPECT_DOUBLE_EQ(m.recall(0), 0.5);
  EXPECT_DOUBLE_EQ(m.recall(1), 1.0);
  EXPECT_DOUBLE_EQ(m.accuracy(), 0.75);
  EXPECT_EQ(m.class_name(2), "bird");
  m.add(2, 0, 3);
  EXPECT_EQ(m.support(2), 4);
  EXPECT_EQ(m.predicted_count(0), 4);

  ConfusionMatrix inferred;
  inferred.update(scores({1, 4}, {0, 0, 0, 1}), labels({1}, {3}));
  EXPECT_EQ(inferred.classes(), 4);
  EXPECT_EQ(inferred.class_name(3), "3");
  EXPECT_TRUE(std::isnan(inferred.precision(0)));
  std::string msg = error_of([&] { inferred.update(scores({1, 3}, {0, 0, 1}), labels({1}, {2})); });
  EXPECT_NE(msg.find("4"), std::string::npos) << msg;
  EXPECT_THROW(ConfusionMatrix(3, {"a", "b"}), DataError);
  EXPECT_THROW(m.add(3, 0), DataError);
}

// ---------------------------------------------------------------- progress

struct FakeClock {
  double now = 100;
  ProgressClock fn() {
    return [this] { return now; };
  }
};

TEST(Progress, BarRedrawsAtMostTenTimesASecond) {
  FakeClock clock;
  std::ostringstream out;
  EpochProgress p(out, {.mode = ProgressMode::Bar}, clock.fn());
  p.start_epoch(3, 10, 120);
  clock.now += 7.2;  // 45 of 120 steps in 7.2 s: 6.25 steps/s, 75 steps left -> 12 s
  p.update(45, 0.2345, 1440);
  const std::string first = "\repoch 3/10 [###########...................] 45/120 loss 0.2345 200 samples/s ETA 00:12";
  EXPECT_EQ(out.str(), first);
  clock.now += 0.0625;
  p.update(46, 0.2, 1472);
  EXPECT_EQ(out.str(), first) << "redrawn within 0.1 s";
  clock.now += 0.0625;
  p.update(47, 0.2, 1504);
  EXPECT_NE(out.str(), first);
  out.str("");
  clock.now = 100 + 12;
  p.update(120, 0.125, 3840);
  p.finish("val_loss 0.3000");
  EXPECT_EQ(out.str(),
            "\repoch 3/10 [##############################] 120/120 loss 0.1250 320 samples/s ETA 00:00"
            "\repoch 3/10 [##############################] 120/120 loss 0.1250 320 samples/s time 00:12 val_loss "
            "0.3000\n");
}

TEST(Progress, BarPadsOverLongerLinesAndFitsTheTerminal) {
  FakeClock clock;
  std::ostringstream out;
  EpochProgress p(out, {.mode = ProgressMode::Bar}, clock.fn());
  p.start_epoch(1, 1, 1000);
  clock.now += 1;
  p.update(10, 1.5, 1000);
  const std::string a = out.str();
  out.str("");
  clock.now += 1;
  p.update(20, 1.5, 20);  // "10 samples/s" is shorter than "1000 samples/s": spaces wipe the rest
  EXPECT_EQ(out.str().size(), a.size()) << out.str();
  EXPECT_TRUE(out.str().ends_with("  ")) << out.str();

  for (int columns : {70, 40}) {
    out.str("");
    EpochProgress narrow(out, {.mode = ProgressMode::Bar, .columns = columns}, clock.fn());
    narrow.start_epoch(1, 1, 1000);
    clock.now += 1;
    narrow.update(10, 1.5, 100);
    const std::string line = out.str().substr(1);
    EXPECT_LT(line.size(), static_cast<size_t>(columns)) << line;
    EXPECT_EQ(line.find('[') != std::string::npos, columns == 70) << "the bar shrinks, then goes: " << line;
  }
}

TEST(Progress, LogLinesEveryTenthOfTheEpochOrTenSeconds) {
  FakeClock clock;
  std::ostringstream out;
  EpochProgress p(out, {.mode = ProgressMode::Log}, clock.fn());
  p.start_epoch(1, 2, 100);
  for (int s = 1; s <= 100; ++s) {
    clock.now += 0.01;
    p.update(s, 1.0, s * 10);
  }
  p.finish();
  std::string text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 10) << text;  // 10%..90% and the final line
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("epoch 1/2 step 10/100 (10%) loss 1.0000 1000 samples/s ETA 00:01\n"), std::string::npos)
      << text;
  EXPECT_NE(text.find("epoch 1/2 step 100/100 (100%) loss 1.0000 1000 samples/s time 00:01\n"), std::string::npos)
      << text;

  // Slow steps: a line every 10 s even between the 10% marks.
  out.str("");
  p.start_epoch(2, 2, 1000);
  for (int s = 1; s <= 30; ++s) {
    clock.now += 1;
    p.update(s, 0.5, s);
  }
  text = out.str();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 3) << text;
  EXPECT_NE(text.find("step 10/1000 (1%)"), std::string::npos) << text;
}

TEST(Progress, QuietPrintsNothingAndDurationsFormat) {
  FakeClock clock;
  std::ostringstream out;
  EpochProgress p(out, {.mode = ProgressMode::Quiet}, clock.fn());
  p.start_epoch(1, 1, 10);
  clock.now += 20;
  p.update(5, 1, 5);
  p.finish("x");
  EXPECT_EQ(out.str(), "");
  EXPECT_DOUBLE_EQ(p.elapsed(), 20);
  EXPECT_EQ(progress_mode_for(true), ProgressMode::Quiet);
  EXPECT_EQ(format_duration(0), "00:00");
  EXPECT_EQ(format_duration(59.6), "01:00");
  EXPECT_EQ(format_duration(3725), "1:02:05");
  EXPECT_EQ(format_duration(kNaN), "--:--");
  EXPECT_EQ(format_duration(-1), "--:--");
}

// ---------------------------------------------------------------- svg

// Structural XML check: balanced tags, quoted attributes, only known entities, and no
// non-finite numbers in attributes.
std::string xml_problem(const std::string& s) {
  std::vector<std::string> open;
  for (size_t i = 0; i < s.size();) {
    if (s[i] == '&') {
      size_t semi = s.find(';', i);
      std::string entity = semi == std::string::npos ? "" : s.substr(i, semi - i + 1);
      if (entity != "&amp;" && entity != "&lt;" && entity != "&gt;" && entity != "&quot;" && entity != "&apos;")
        return "bad entity at " + std::to_string(i);
      i = semi + 1;
      continue;
    }
    if (s[i] == '>') return "stray '>' at " + std::to_string(i);
    if (s[i] != '<') {
      ++i;
      continue;
    }
    size_t end = s.find('>', i);
    if (end == std::string::npos) return "unterminated tag";
    std::string tag = s.substr(i + 1, end - i - 1);
    i = end + 1;
    if (tag.starts_with("?")) continue;
    if (tag.find('<') != std::string::npos) return "'<' inside tag " + tag;
    if (std::count(tag.begin(), tag.end(), '"') % 2) return "unbalanced quotes in " + tag;
    std::string lower = tag;
    for (auto& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    if (lower.find("nan") != std::string::npos || lower.find("inf") != std::string::npos)
      return "non-finite number in " + tag;
    if (tag.starts_with("/")) {
      if (open.empty() || open.back() != tag.substr(1)) return "mismatched </" + tag.substr(1) + ">";
      open.pop_back();
    } else if (!tag.ends_with("/")) {
      open.push_back(tag.substr(0, tag.find_first_of(" \n")));
    }
  }
  return open.empty() ? "" : "unclosed <" + open.back() + ">";
}

size_t occurrences(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Svg, CheckerRejectsBrokenXml) {
  EXPECT_EQ(xml_problem("<svg><g></g></svg>"), "");
  EXPECT_NE(xml_problem("<svg><g></svg>"), "");
  EXPECT_NE(xml_problem("<svg x=\"nan\"/>"), "");
  EXPECT_NE(xml_problem("<svg>a & b</svg>"), "");
}

TEST(Svg, LineChartWithGapsSinglePointsConstantsAndTwoAxes) {
  LineChart c;
  c.title = "loss <train> & \"val\"";
  c.y_label = "loss";
  c.y2_label = "accuracy";
  c.series.push_back({.name = "train_loss", .y = {2.0, 1.5, kNaN, 0.9, 0.7}});
  c.series.push_back({.name = "val_loss", .y = {kNaN, kNaN, 1.2, kNaN, INFINITY}});
  c.series.push_back({.name = "val_accuracy", .y = {0.5, 0.5, 0.5, 0.5, 0.5}, .right_axis = true});
  const std::string svg = line_chart_svg(c);
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_NE(svg.find("loss &lt;train&gt; &amp; &quot;val&quot;"), std::string::npos);
  EXPECT_EQ(occurrences(svg, "<path"), 2u) << "val_loss has no segment";
  EXPECT_NE(svg.find("d=\"M"), std::string::npos);
  // train_loss breaks at the NaN: two moves in its path.
  const size_t path = svg.find("<path d=\"");
  EXPECT_EQ(occurrences(svg.substr(path, svg.find("/>", path) - path), "M"), 2u);
  EXPECT_EQ(occurrences(svg, "<circle"), 4u + 1u + 5u);
  EXPECT_NE(svg.find("stroke-dasharray"), std::string::npos);
  EXPECT_NE(svg.find(">accuracy</text>"), std::string::npos);
}

TEST(Svg, DegenerateChartsStayValid) {
  LineChart one;
  one.series.push_back({.name = "loss", .y = {0.25}});
  EXPECT_EQ(xml_problem(line_chart_svg(one)), "");
  LineChart empty;
  empty.series.push_back({.name = "loss", .y = {kNaN}});
  EXPECT_EQ(xml_problem(line_chart_svg(empty)), "");
  LineChart huge;
  huge.series.push_back({.name = "loss", .y = {-1e308, 1e308}});
  EXPECT_EQ(xml_problem(line_chart_svg(huge)), "");
  LineChart bad;
  bad.series.push_back({.name = "loss", .x = {1, 2}, .y = {1}});
  EXPECT_THROW(line_chart_svg(bad), DataError);
  bad.series.clear();
  bad.width = 10;
  EXPECT_THROW(line_chart_svg(bad), DataError);
}

TEST(Svg, NiceTicksCoverTheRangeEvenly) {
  EXPECT_EQ(nice_ticks(0, 1), (std::vector<double>{0, 0.5, 1}));
  EXPECT_EQ(nice_ticks(1, 1, 5, true), (std::vector<double>{0, 1, 2}));
  for (auto [lo, hi] : std::vector<std::pair<double, double>>{{0.37, 2.1}, {3, 3}, {-5e-6, 7e-5}, {1, 250}, {-3, -2}}) {
    auto t = nice_ticks(lo, hi);
    ASSERT_GE(t.size(), 2u);
    EXPECT_LE(t.size(), 12u);
    EXPECT_LE(t.front(), lo);
    EXPECT_GE(t.back(), hi);
    for (size_t i = 2; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], t[1] - t[0], 1e-9 * (t[1] - t[0]));
  }
  EXPECT_GE(nice_ticks(1, 3, 10, true)[1] - nice_ticks(1, 3, 10, true)[0], 1.0);
  EXPECT_THROW(nice_ticks(0, kNaN), DataError);
}

TEST(Svg, ConfusionMatrixHeatmapEscapesNamesAndShowsCounts) {
  ConfusionMatrix m(0, {"<cat & dog>", "bird\x01", "fish"});
  m.add(0, 0, 8);
  m.add(0, 1, 2);
  m.add(2, 2, 17);
  const std::string svg = confusion_matrix_svg(m, "val \"epoch 3\"");
  EXPECT_EQ(xml_problem(svg), "") << svg;
  EXPECT_NE(svg.find("&lt;cat &amp; dog&gt;"), std::string::npos);
  EXPECT_EQ(svg.find('\x01'), std::string::npos);
  EXPECT_NE(svg.find(">17</text>"), std::string::npos);
  EXPECT_NE(svg.find("fill=\"#08306b\""), std::string::npos) << "a full row share is the darkest colour";
  EXPECT_EQ(occurrences(svg, "<rect x="), 9u + 1u);  // cells + colour key
  EXPECT_EQ(xml_problem(confusion_matrix_svg(ConfusionMatrix())), "");
  ConfusionMatrix many(200);
  EXPECT_EQ(xml_problem(confusion_matrix_svg(many)), "");
}

// ---------------------------------------------------------------- run directory files

class RunDir : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("onnxtrain_cli_modules_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  static std::string read(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
  }
  fs::path dir_;
};

TEST_F(RunDir, NumbersFollowTheHighestExisting) {
  const fs::path parent = dir_ / "runs" / "train";
  EXPECT_EQ(create_numbered_run_dir(parent), parent / "1");
  EXPECT_EQ(create_numbered_run_dir(parent), parent / "2");
  fs::create_directories(parent / "7");
  fs::create_directories(parent / "abc");
  fs::create_directories(parent / "9x");
  std::ofstream(parent / "12.txt") << "";
  EXPECT_EQ(create_numbered_run_dir(parent), parent / "8");
  EXPECT_TRUE(fs::is_directory(parent / "8"));
}

TEST_F(RunDir, ConcurrentRunsGetDistinctDirectories) {
  std::vector<fs::path> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); ++i) threads.emplace_back([&, i] { got[i] = create_numbered_run_dir(dir_); });
  for (auto& t : threads) t.join();
  std::set<fs::path> distinct(got.begin(), got.end());
  EXPECT_EQ(distinct.size(), got.size());
}

TEST_F(RunDir, AtomicWritesReplaceWholeFiles) {
  fs::create_directories(dir_);
  write_file_atomically(dir_ / "a.txt", "first");
  write_file_atomically(dir_ / "a.txt", "second");
  EXPECT_EQ(read(dir_ / "a.txt"), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir_), fs::directory_iterator()), 1) << "no temporary file left";
  EXPECT_THROW(write_file_atomically(dir_ / "missing" / "a.txt", "x"), BackendError);
}

TEST_F(RunDir, MetricsCsvFlushesEveryRow) {
  fs::create_directories(dir_);
  const fs::path path = dir_ / "metrics.csv";
  {
    MetricsCsv csv(path, {"val_loss", "val_accuracy"});
    EXPECT_EQ(read(path), "step,epoch,lr,loss,val_loss,val_accuracy\n");
    csv.write({.step = 1, .epoch = 1, .lr = 0.001, .loss = 2.5});
    EXPECT_EQ(read(path), "step,epoch,lr,loss,val_loss,val_accuracy\n1,1,0.001,2.5,,\n") << "visible before close";
    csv.write({.step = 2, .epoch = 1, .lr = 1e-05, .loss = kNaN, .extra = {{"val_accuracy", 0.75}}});
    std::string msg = error_of([&] { csv.write({.step = 3, .extra = {{"val_acc", 1}}}); });
    EXPECT_NE(msg.find("'val_acc' was not declared"), std::string::npos) << msg;
  }
  EXPECT_EQ(read(path), "step,epoch,lr,loss,val_loss,val_accuracy\n1,1,0.001,2.5,,\n2,1,1e-05,nan,,0.75\n");
  {
    MetricsCsv resumed(path, {"val_loss", "val_accuracy"}, true);
    resumed.write({.step = 3, .epoch = 2, .lr = 0.1, .loss = 0.1 + 0.2});
  }
  EXPECT_NE(read(path).find("\n3,2,0.1,0.30000000000000004,,\n"), std::string::npos) << read(path);
  EXPECT_THROW(MetricsCsv(path, {"val_loss"}, true), DataError);
  EXPECT_THROW(MetricsCsv(dir_ / "x.csv", {"loss"}), DataError);
  EXPECT_THROW(MetricsCsv(dir_ / "no" / "x.csv", {}), BackendError);
}

TEST_F(RunDir, ConfusionMatrixAndClassReportCsv) {
  ConfusionMatrix m(0, {"a,b", "say \"c\""});
  m.add(0, 0, 3);
  m.add(0, 1, 1);
  EXPECT_EQ(confusion_matrix_csv(m), "true\\predicted,\"a,b\",\"say \"\"c\"\"\"\n\"a,b\",3,1\n\"say \"\"c\"\"\",0,0\n");
  EXPECT_EQ(class_report_csv(m), "class,precision,recall,support\n\"a,b\",1,0.75,4\n\"say \"\"c\"\"\",0,,0\n");
}

// ---------------------------------------------------------------- interrupt

int g_outer_calls = 0;
extern "C" void outer_handler(int) { ++g_outer_calls; }

TEST(Interrupt, FirstSignalSetsTheFlagAndTheOldHandlerReturns) {
  std::signal(SIGINT, outer_handler);
  {
    InterruptGuard guard(nullptr);
    EXPECT_FALSE(guard.requested());
    EXPECT_EQ(guard.exit_code(), 0);
    std::raise(SIGINT);
    EXPECT_TRUE(guard.requested());
    EXPECT_EQ(guard.signal_number(), SIGINT);
    EXPECT_EQ(guard.exit_code(), 130);
    EXPECT_THROW(InterruptGuard second, std::logic_error);
  }
  EXPECT_EQ(g_outer_calls, 0);
  std::raise(SIGINT);
  EXPECT_EQ(g_outer_calls, 1);
  std::signal(SIGINT, SIG_DFL);
  InterruptGuard fresh(nullptr);
  EXPECT_FALSE(fresh.requested()) << "a new guard starts clear";
}

TEST(InterruptDeathTest, SecondSignalEndsTheProcess) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        InterruptGuard guard(nullptr);
        std::raise(SIGTERM);
        if (!guard.requested()) std::_Exit(3);
        std::raise(SIGINT);
        std::_Exit(0);
      },
      ::testing::KilledBySignal(SIGINT), "");
}

}  // namespace
