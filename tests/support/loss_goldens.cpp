#include "tests/support/loss_goldens.h"

#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

namespace onnxtrain::test {

namespace {

std::vector<double> numbers(const std::string& text) {
  std::vector<double> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stod(item));
  return out;
}

std::string text_of(const Tensor& t) { return {static_cast<const char*>(t.raw()), static_cast<size_t>(t.numel())}; }

}  // namespace

std::string probe_model(DType dtype, const Shape& shape) {
  std::string dims, zeros;
  for (int64_t d : shape) dims += (dims.empty() ? "" : ",") + std::to_string(d);
  for (int64_t i = 0; i < shape_numel(shape); ++i) zeros += i ? ", 0" : "0";
  const std::string t = (dtype == DType::Double ? "double[" : "float[") + dims + "]";
  return model_header(17) + "probe (" + t + " X) => (" + t + " Y) <" + t + " B = {" + zeros + "}> { Y = Add(X, B) }";
}

StepGradients loss_probe(const Tensor& input, const Tensor& target, const LossOptions& loss) {
  Model model = Model::from_text(probe_model(input.dtype(), input.shape()));
  TrainingOptions options;
  options.loss = loss;
  TrainingSession session(model, options);
  return session.compute_gradients({{"X", input}, {"label", target}});
}

LossOptions parse_golden_options(const std::string& text) {
  LossOptions o;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ';');) {
    const auto eq = item.find('=');
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    if (key == "kind") o.kind = value;
    else if (key == "reduction") o.reduction = value;
    else if (key == "ignore_index") o.ignore_index = std::stoll(value);
    else if (key == "class_weights") o.class_weights = numbers(value);
    else if (key == "label_smoothing") o.label_smoothing = std::stod(value);
    else if (key == "beta") o.beta = std::stod(value);
    else if (key == "delta") o.delta = std::stod(value);
    else if (key == "pos_weight") o.pos_weight = numbers(value);
    else if (key == "log_target") o.log_target = value == "true";
    else if (key == "dice_smooth") o.dice_smooth = std::stod(value);
    else if (key == "dice_weight") o.dice_weight = std::stod(value);
    else ADD_FAILURE() << "unknown option '" << key << "' in the goldens";
  }
  return o;
}

int check_loss_goldens(const std::map<std::string, Tensor>& goldens, const std::string& kind) {
  int count = 0;
  for (const auto& [key, value] : goldens) {
    if (!key.ends_with(".options")) continue;
    const std::string name = key.substr(0, key.size() - std::string(".options").size());
    const LossOptions options = parse_golden_options(text_of(value));
    if (options.kind != kind) continue;
    SCOPED_TRACE(name + " (" + text_of(value) + ")");
    ++count;
    auto step = loss_probe(goldens.at(name + ".input"), goldens.at(name + ".target"), options);
    const double expected = goldens.at(name + ".loss").as_double().at(0);
    EXPECT_NEAR(step.loss, expected, 1e-5 * std::abs(expected) + 1e-7);
    EXPECT_LE(scaled_error(step.gradients.at("B"), goldens.at(name + ".grad")), 1e-5);
  }
  return count;
}

}  // namespace onnxtrain::test
