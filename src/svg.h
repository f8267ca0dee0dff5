#pragma once
// Self-contained SVG charts for a training run: curves over epochs and a confusion-matrix
// heatmap. Plain SVG 1.1 text, no scripts or external resources, so any browser shows it.
#include <string>
#include <string_view>
#include <vector>

#include "onnxtrain/metrics.h"

namespace onnxtrain {

struct ChartSeries {
  std::string name;
  std::vector<double> x;  // empty: 1, 2, ..., y.size() (epochs); otherwise as many as y
  // NaN or infinite values leave a gap in the line; a series measured only every few
  // epochs should give its own x instead, so its points are joined.
  std::vector<double> y;
  bool right_axis = false;  // plotted against the second y axis (drawn dashed)
};

struct LineChart {
  std::string title;
  std::string x_label = "epoch";
  std::string y_label;   // left axis
  std::string y2_label;  // right axis, shown when a series uses it
  std::vector<ChartSeries> series;
  int width = 800, height = 450;
};

// Throws DataError when a series' x and y lengths differ or the size is not positive.
std::string line_chart_svg(const LineChart& chart);

// Cells hold the counts; colour is the count's share of its row (the true class), so
// recall per class reads along the diagonal regardless of class imbalance.
std::string confusion_matrix_svg(const ConfusionMatrix& matrix, std::string_view title = "confusion matrix");

// Text safe inside XML elements and attribute values; control characters XML 1.0 forbids
// become U+FFFD.
std::string xml_escape(std::string_view text);

// Round tick values (1, 2 or 5 times a power of ten apart) whose first is <= lo and last
// >= hi, about `target` of them; `integer` keeps the spacing at least 1. A zero-width
// range is widened around its value. Both bounds must be finite.
std::vector<double> nice_ticks(double lo, double hi, int target = 5, bool integer = false);

}  // namespace onnxtrain
