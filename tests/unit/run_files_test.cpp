// The files a fit writes into its run directory: SVG charts (curves, confusion matrix),
// numbered run directories, atomic writes, metrics.csv and the confusion-matrix tables.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <thread>

#include "onnxtrain/onnxtrain.h"
#include "onnxtrain/atomic_file.h"
#include "src/run_dir.h"
#include "src/svg.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;
namespace fs = std::filesystem;

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
using test::error_of;

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

// A run killed after writing rows 3 and 4 (the last one torn) but before checkpointing step
// 3 is resumed at step 2: the rows it will write again are dropped first.
TEST_F(RunDir, ResumedMetricsCsvDropsRowsAfterTheCheckpointAndATornRow) {
  fs::create_directories(dir_);
  const fs::path path = dir_ / "metrics.csv";
  std::ofstream(path, std::ios::binary) << "step,epoch,lr,loss\n1,1,0.1,2\n2,1,0.1,1.5\n3,2,0.1,1\n4,2,0.1,0.";
  {
    MetricsCsv resumed(path, {}, true, 2);
    EXPECT_EQ(read(path), "step,epoch,lr,loss\n1,1,0.1,2\n2,1,0.1,1.5\n");
    resumed.write({.step = 3, .epoch = 2, .lr = 0.1, .loss = 1});
  }
  EXPECT_EQ(read(path), "step,epoch,lr,loss\n1,1,0.1,2\n2,1,0.1,1.5\n3,2,0.1,1\n");
  MetricsCsv(path, {}, true, 7);  // nothing to drop
  EXPECT_EQ(read(path), "step,epoch,lr,loss\n1,1,0.1,2\n2,1,0.1,1.5\n3,2,0.1,1\n");
}

TEST_F(RunDir, ConfusionMatrixAndClassReportCsv) {
  ConfusionMatrix m(0, {"a,b", "say \"c\""});
  m.add(0, 0, 3);
  m.add(0, 1, 1);
  EXPECT_EQ(confusion_matrix_csv(m), "true\\predicted,\"a,b\",\"say \"\"c\"\"\"\n\"a,b\",3,1\n\"say \"\"c\"\"\",0,0\n");
  EXPECT_EQ(class_report_csv(m), "class,precision,recall,support\n\"a,b\",1,0.75,4\n\"say \"\"c\"\"\",0,,0\n");
}

}  // namespace
