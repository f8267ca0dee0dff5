// The options tables (option_choices.h, option_fields.h): every field round-trips through
// the JSON form with a non-default value, every row has a flag and a description, and JSON
// written by earlier versions still reads.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "onnxtrain/onnxtrain.h"
#include "onnxtrain/option_fields.h"

using namespace onnxtrain;

namespace {

// A value for `value` that differs from `before` (its default).
template <typename T>
T other_value(const T& before, const ChoiceList* choices, std::string_view key) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (choices) {
      for (const Choice& c : choices->choices())
        if (c.name != before) return std::string(c.name);
      ADD_FAILURE() << key << ": a choice list with one value";
      return before;
    }
    return before + "x_" + std::string(key);
  } else if constexpr (std::is_same_v<T, bool>) {
    return !before;
  } else if constexpr (std::is_same_v<T, std::vector<double>>) {
    return {0.5, 2.25, static_cast<double>(before.size())};
  } else if constexpr (std::is_same_v<T, std::optional<double>>) {
    return before.value_or(0) + 0.125;
  } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
    return {"a_" + std::string(key), "b", std::to_string(before.size())};
  } else {
    return before + 3;
  }
}

// Moves every row of `fields` in `options` off its default; returns the rows' keys.
template <typename Options>
std::vector<std::string> change_all(std::span<const OptionField<Options>> fields, Options& options) {
  std::vector<std::string> keys;
  for_each_field(fields, options, [&](const auto& row, auto& value) {
    auto changed = other_value(value, row.choices, row.key);
    EXPECT_NE(changed, value) << row.key;
    value = changed;
    keys.emplace_back(row.key);
  });
  return keys;
}

template <typename Options>
void expect_same_fields(std::span<const OptionField<Options>> fields, const Options& got, const Options& want) {
  for (const auto& row : fields)
    std::visit([&](auto member) { EXPECT_EQ(got.*member, want.*member) << row.key; }, row.member);
}

TEST(OptionTables, EveryFieldRoundTripsThroughJsonOffItsDefault) {
  TrainingOptions o;
  auto keys = change_all<TrainingOptions>(kTrainingFields, o);
  auto loss_keys = change_all<LossOptions>(kLossFields, o.loss);
  auto detection_keys = change_all<DetectionLossOptions>(kDetectionLossFields, o.loss.detection);
  auto optimizer_keys = change_all<OptimizerOptions>(kOptimizerFields, o.optimizer);
  o.optimizer.groups = {{.pattern = "^fc", .lr = 0.5}, {.pattern = "bias$", .weight_decay = 0.0}};
  o.schedule = parse_schedule("cosine:1e-5:warmup_steps=7");
  o.total_steps = 99;

  const std::string text = format_training_options(o);
  const auto j = nlohmann::json::parse(text);
  for (const auto& k : keys) EXPECT_TRUE(j.contains(k)) << k;
  for (const auto& k : loss_keys) EXPECT_TRUE(j.at("loss").contains(k)) << "loss." << k;
  for (const auto& k : detection_keys) EXPECT_TRUE(j.at("loss").at("detection").contains(k)) << "loss.detection." << k;
  for (const auto& k : optimizer_keys) EXPECT_TRUE(j.at("optimizer").contains(k)) << "optimizer." << k;

  const TrainingOptions back = parse_training_options(text);
  expect_same_fields<TrainingOptions>(kTrainingFields, back, o);
  expect_same_fields<LossOptions>(kLossFields, back.loss, o.loss);
  expect_same_fields<DetectionLossOptions>(kDetectionLossFields, back.loss.detection, o.loss.detection);
  expect_same_fields<OptimizerOptions>(kOptimizerFields, back.optimizer, o.optimizer);
  ASSERT_EQ(back.optimizer.groups.size(), 2u);
  EXPECT_EQ(back.optimizer.groups[0].pattern, "^fc");
  EXPECT_EQ(back.optimizer.groups[0].lr, 0.5);
  EXPECT_FALSE(back.optimizer.groups[0].weight_decay);
  EXPECT_EQ(back.optimizer.groups[1].weight_decay, 0.0);
  EXPECT_EQ(back.schedule, o.schedule);
  EXPECT_EQ(back.total_steps, 99);
}

TEST(OptionTables, UnsetEpsIsNotWrittenAndStaysUnset) {
  const auto j = nlohmann::json::parse(format_training_options(TrainingOptions{}));
  EXPECT_FALSE(j.at("optimizer").contains("eps"));
  EXPECT_FALSE(parse_training_options(j.dump()).optimizer.eps.has_value());
}

template <typename Options>
void collect_rows(std::span<const OptionField<Options>> fields, std::set<std::string>& flags, const char* table) {
  std::set<std::string_view> keys;
  for (const auto& row : fields) {
    EXPECT_TRUE(keys.insert(row.key).second) << table << ": key " << row.key << " twice";
    EXPECT_TRUE(row.flag.starts_with("--") && row.flag.size() > 3) << table << "." << row.key << ": flag '" << row.flag << "'";
    EXPECT_TRUE(flags.insert(std::string(row.flag)).second) << row.flag << " used twice";
    EXPECT_GT(row.description.size(), 5u) << table << "." << row.key << ": no description";
  }
}

TEST(OptionTables, EveryRowHasAUniqueFlagAndADescription) {
  std::set<std::string> flags;
  collect_rows<LossOptions>(kLossFields, flags, "loss");
  collect_rows<DetectionLossOptions>(kDetectionLossFields, flags, "loss.detection");
  collect_rows<OptimizerOptions>(kOptimizerFields, flags, "optimizer");
  collect_rows<TrainingOptions>(kTrainingFields, flags, "training");
  // The flags of `onnxtrain train` that earlier versions had keep their names.
  for (const char* flag : {"--loss", "--output", "--label", "--reduction", "--class-weights", "--label-smoothing",
                           "--smooth-l1-beta", "--huber-delta", "--pos-weight", "--log-target", "--loss-model",
                           "--optimizer", "--lr", "--momentum", "--nesterov", "--weight-decay", "--no-decay-bias-norm",
                           "--eps", "--clip-grad-norm", "--accumulate", "--freeze", "--trainable", "--bn", "--seed"})
    EXPECT_TRUE(flags.count(flag)) << flag;
}

TEST(OptionChoices, DefaultsAreAllowedNamesUniqueDescribed) {
  const TrainingOptions d;
  const std::pair<const ChoiceList*, std::string> lists[] = {{&kLossKinds, d.loss.kind},
                                                             {&kReductions, d.loss.reduction},
                                                             {&kOptimizerKinds, d.optimizer.kind},
                                                             {&kBatchNormModes, d.batchnorm},
                                                             {&kBnRunningVars, d.bn_running_var},
                                                             {&kPrecisions, d.precision},
                                                             {&kConvAlgorithms, d.conv_algorithm}};
  for (const auto& [list, default_value] : lists) {
    EXPECT_TRUE(list->contains(default_value)) << list->option();
    std::set<std::string_view> names;
    for (const Choice& c : list->choices()) {
      EXPECT_TRUE(names.insert(c.name).second) << list->option() << ": " << c.name << " twice";
      EXPECT_FALSE(c.description.empty()) << c.name;
    }
  }
}

TEST(OptionChoices, CheckListsTheAllowedValues) {
  EXPECT_NO_THROW(kBatchNormModes.check("frozen"));
  try {
    kBatchNormModes.check("sideways");
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_STREQ(e.what(), "option 'batchnorm' is 'sideways'; allowed: auto, train, frozen");
  }
  EXPECT_EQ(kBnRunningVars.joined(" | "), "onnx | pytorch");
  EXPECT_THROW(kOptimizerKinds.check("adamax"), DataError);
}

TEST(OptionChoices, JsonWithAValueOutsideTheListIsRejected) {
  auto j = nlohmann::json::parse(format_training_options(TrainingOptions{}));
  j["optimizer"]["kind"] = "adamax";
  try {
    parse_training_options(j.dump());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("adamax"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("rmsprop"), std::string::npos) << e.what();
  }
  j = nlohmann::json::parse(format_training_options(TrainingOptions{}));
  j["loss"].erase("beta");
  try {
    parse_training_options(j.dump());
    FAIL() << "no error";
  } catch (const DataError& e) {
    EXPECT_NE(std::string(e.what()).find("loss.beta"), std::string::npos) << e.what();
  }
}

// The form format_training_options wrote before the tables (and export_training_model
// stored in models): it still reads, field by field.
TEST(OptionTables, JsonOfTheEarlierFormatReads) {
  const char* text = R"({
    "accumulate": 2, "batchnorm": "frozen", "bn_running_var": "pytorch", "clip_grad_norm": 1.5,
    "format": "onnxtrain-training-1", "freeze": "^fc1", "trainable": "", "seed": 7, "total_steps": 120,
    "schedule": "step:10:0.5",
    "loss": {"beta": 1.0, "class_weights": [1.0, 2.0], "delta": 1.0, "ignore_index": 3, "kind": "cross_entropy",
             "label_smoothing": 0.1, "log_target": false, "model_path": "", "output": "logits", "pos_weight": [],
             "reduction": "sum", "target": "y"},
    "optimizer": {"alpha": 0.99, "amsgrad": true, "beta1": 0.8, "beta2": 0.99, "centered": false, "dampening": 0.0,
                  "eps": 1e-6, "groups": [{"pattern": "bias", "weight_decay": 0.0}], "initial_accumulator_value": 0.0,
                  "kind": "adamw", "lr": 0.003, "lr_decay": 0.0, "momentum": 0.0, "nesterov": false,
                  "no_decay_on_bias_and_norm": true, "weight_decay": 0.01}})";
  const TrainingOptions o = parse_training_options(text);
  EXPECT_EQ(o.accumulate, 2);
  EXPECT_EQ(o.batchnorm, "frozen");
  EXPECT_EQ(o.bn_running_var, "pytorch");
  EXPECT_EQ(o.clip_grad_norm, 1.5);
  EXPECT_EQ(o.freeze, "^fc1");
  EXPECT_EQ(o.seed, 7u);
  EXPECT_EQ(o.total_steps, 120);
  EXPECT_EQ(format_schedule(o.schedule), "step:10:0.5");
  EXPECT_EQ(o.loss.class_weights, (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(o.loss.ignore_index, 3);
  EXPECT_EQ(o.loss.label_smoothing, 0.1);
  EXPECT_EQ(o.loss.output, "logits");
  EXPECT_EQ(o.loss.reduction, "sum");
  EXPECT_EQ(o.loss.target, "y");
  EXPECT_TRUE(o.optimizer.amsgrad);
  EXPECT_EQ(o.optimizer.beta1, 0.8);
  EXPECT_EQ(o.optimizer.beta2, 0.99);
  EXPECT_EQ(o.optimizer.eps, 1e-6);
  EXPECT_EQ(o.optimizer.kind, "adamw");
  EXPECT_EQ(o.optimizer.lr, 0.003);
  EXPECT_TRUE(o.optimizer.no_decay_on_bias_and_norm);
  EXPECT_EQ(o.optimizer.weight_decay, 0.01);
  ASSERT_EQ(o.optimizer.groups.size(), 1u);
  EXPECT_EQ(o.optimizer.groups[0].weight_decay, 0.0);
  // Fields added later read their default when absent, and are written from now on.
  EXPECT_FALSE(o.sync_batchnorm);
  EXPECT_EQ(o.precision, "fp32");
  EXPECT_EQ(o.conv_algorithm, "auto");
  EXPECT_TRUE(o.loss.outputs.empty());
  EXPECT_TRUE(o.loss.detection.anchors.empty());
  EXPECT_FALSE(o.loss.detection.box.has_value());
  auto expected = nlohmann::json::parse(text);
  expected["sync_batchnorm"] = false;
  expected["precision"] = "fp32";
  expected["conv_algorithm"] = "auto";
  expected["loss"]["dice_smooth"] = 1.0;
  expected["loss"]["dice_weight"] = 1.0;
  expected["loss"]["outputs"] = nlohmann::json::array();
  expected["loss"]["detection"] = nlohmann::json::parse(R"({"alpha": 0.5, "anchor_t": 4.0, "anchors": [], "balance": [],
      "beta": 6.0, "cls": 0.5, "dfl": 1.5, "label_smoothing": 0.0, "obj": 1.0, "reg_max": 16, "topk": 10})");
  EXPECT_EQ(nlohmann::json::parse(format_training_options(o)), expected);
}

}  // namespace
