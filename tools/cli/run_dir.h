#pragma once
// The files of one training run: its directory, the per-step metrics CSV and small text
// files (configs, summaries, charts; written with onnxtrain::write_file_atomically, so a
// crash never leaves half a file).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "onnxtrain/atomic_file.h"
#include "onnxtrain/metrics.h"

namespace onnxtrain::cli {

// Creates and returns parent/N with N = 1 + the highest purely numeric entry name in
// parent (1 when there is none); parent is created as needed. The directory is claimed
// with mkdir, which fails if it exists, so concurrent runs never share one: on a lost
// race the next number is tried. Throws BackendError when the file system refuses.
std::filesystem::path create_numbered_run_dir(const std::filesystem::path& parent = "runs/train");

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
  MetricsCsv(const std::filesystem::path& path, std::vector<std::string> extra_columns, bool append = false);
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

}  // namespace onnxtrain::cli
