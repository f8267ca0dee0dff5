#include "src/fit_state.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "onnxtrain/errors.h"
#include "src/svg.h"

namespace onnxtrain {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// JSON has no NaN: a missing value (e.g. a validation loss without data) is null.
nlohmann::json number_or_null(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); }
double number_of(const nlohmann::json& x) { return x.is_null() ? kNaN : x.get<double>(); }

nlohmann::json numbers_or_null(const std::vector<double>& values) {
  nlohmann::json a = nlohmann::json::array();
  for (double x : values) a.push_back(number_or_null(x));
  return a;
}

std::vector<double> numbers_of(const nlohmann::json& a) {
  std::vector<double> v;
  for (const auto& x : a) v.push_back(number_of(x));
  return v;
}

}  // namespace

std::string FitState::to_json() const {
  return nlohmann::json{{"micro", micro},
                        {"best", number_or_null(best)},
                        {"bad_epochs", bad_epochs},
                        {"epoch_loss_sum", epoch_loss_sum},
                        {"epoch_samples", epoch_samples},
                        {"step_loss_sum", step_loss_sum},
                        {"step_micro", step_micro},
                        {"step_parts_sum", step_parts_sum},
                        {"train_loss", numbers_or_null(train_loss)},
                        {"val_loss", numbers_or_null(val_loss)},
                        {"val_metric", numbers_or_null(val_metric)}}
      .dump();
}

FitState FitState::from_json(const std::string& text, const std::string& source) {
  try {
    auto j = nlohmann::json::parse(text);
    FitState s;
    s.micro = j.at("micro");
    s.best = number_of(j.at("best"));
    s.bad_epochs = j.at("bad_epochs");
    s.epoch_loss_sum = j.at("epoch_loss_sum");
    s.epoch_samples = j.at("epoch_samples");
    s.step_loss_sum = j.at("step_loss_sum");
    s.step_micro = j.at("step_micro");
    if (j.contains("step_parts_sum")) s.step_parts_sum = j.at("step_parts_sum").get<std::vector<double>>();
    s.train_loss = numbers_of(j.at("train_loss"));
    s.val_loss = numbers_of(j.at("val_loss"));
    s.val_metric = numbers_of(j.at("val_metric"));
    return s;
  } catch (const nlohmann::json::exception& e) {
    throw DataError(source + ": its training position (note \"progress\") is unreadable: " + e.what());
  }
}

std::string fit_curves_svg(const FitState& state, const std::string& metric) {
  LineChart chart;
  chart.title = "training";
  chart.y_label = "loss";
  chart.series.push_back({.name = "train loss", .y = state.train_loss});
  if (!state.val_loss.empty()) chart.series.push_back({.name = "val loss", .y = state.val_loss});
  if (!state.val_metric.empty()) {
    chart.y2_label = "val " + metric;
    chart.series.push_back({.name = "val " + metric, .y = state.val_metric, .right_axis = true});
  }
  return line_chart_svg(chart);
}

}  // namespace onnxtrain
