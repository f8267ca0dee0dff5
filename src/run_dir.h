#pragma once
// The files of one training run besides models and checkpoints: the per-step metrics CSV
// and the confusion-matrix tables. (create_numbered_run_dir is public, in trainer.h.)
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "onnxtrain/metrics.h"
#include "onnxtrain/trainer.h"  // create_numbered_run_dir

namespace onnxtrain {

// One value per column, or nothing (an empty cell), e.g. val_loss outside evaluations.
struct MetricsRow {
  int64_t step = 0;
  int64_t epoch = 0;
  double lr = 0;
  double loss = 0;
  std::map<std::string, double> extra;  // optional columns by name
};

// metrics.csv: "step,epoch,lr,loss" plus the optional columns fixed at construction,
// one row per optimizer step. Each row is flushed to the OS as written, so a killed run
// keeps every finished row. Numbers are written in their shortest round-trip form; NaN
// as "nan".
class MetricsCsv {
 public:
  // append = false truncates; append = true continues an existing file (resumed run)
  // whose header must equal ours (DataError otherwise), and writes the header if the
  // file is new or empty. Declared columns must be distinct, non-empty names other than
  // the fixed ones (DataError). I/O failures are BackendErrors.
  // Appending drops the rows after `last_step` first, and a torn last line: a run killed
  // after writing rows but before its next checkpoint repeats those steps when resumed.
  MetricsCsv(const std::filesystem::path& path, std::vector<std::string> extra_columns, bool append = false,
             int64_t last_step = INT64_MAX);
  ~MetricsCsv();
  MetricsCsv(const MetricsCsv&) = delete;
  MetricsCsv& operator=(const MetricsCsv&) = delete;

  // Throws DataError for a column in row.extra that was not declared.
  void write(const MetricsRow& row);
  const std::vector<std::string>& columns() const { return columns_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::vector<std::string> columns_;  // all, the four fixed ones first
  std::FILE* file_ = nullptr;
};

// A CSV field, quoted when it holds a comma, quote or line break (RFC 4180).
std::string csv_field(std::string_view text);
// Shortest text that reads back as the same double ("nan", "inf", "-inf" otherwise).
std::string format_number(double value);

// The matrix as CSV: a header "true\predicted,<class names>", then one row per true class
// with its name and counts.
std::string confusion_matrix_csv(const ConfusionMatrix& matrix);
// Per class: "class,precision,recall,support" (precision/recall empty when undefined).
std::string class_report_csv(const ConfusionMatrix& matrix);

}  // namespace onnxtrain
