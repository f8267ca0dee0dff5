// The JSON form of TrainingOptions, driven by the field tables of
// include/onnxtrain/option_fields.h.
#include "onnxtrain/errors.h"
#include "onnxtrain/option_fields.h"
#include "src/training_options_json.h"

namespace onnxtrain {

namespace {

template <typename Options>
nlohmann::json fields_to_json(std::span<const OptionField<Options>> fields, const Options& options) {
  nlohmann::json j = nlohmann::json::object();
  for_each_field(fields, options, [&](const auto& row, const auto& value) {
    using T = std::decay_t<decltype(value)>;
    if constexpr (std::is_same_v<T, std::optional<double>>) {
      if (value) j[std::string(row.key)] = *value;
    } else {
      j[std::string(row.key)] = value;
    }
  });
  return j;
}

template <typename Options>
void fields_from_json(std::span<const OptionField<Options>> fields, const nlohmann::json& j, const std::string& where,
                      Options& options) {
  for_each_field(fields, options, [&](const auto& row, auto& value) {
    using T = std::decay_t<decltype(value)>;
    const std::string key(row.key);
    try {
      if constexpr (std::is_same_v<T, std::optional<double>>) {
        if (j.contains(key)) value = j.at(key).template get<double>();
      } else if (row.added_later && !j.contains(key)) {
        // written before the field existed: its default
      } else {
        value = j.at(key).template get<T>();
      }
    } catch (const nlohmann::json::exception& e) {
      throw DataError("training options: field '" + where + key + "': " + e.what());
    }
    if constexpr (std::is_same_v<T, std::string>)
      if (row.choices) row.choices->check(value);
  });
}

}  // namespace

nlohmann::json options_to_json(const TrainingOptions& o) {
  // A custom loss given as bytes is not stored: such options are not serialisable and say so.
  if (!o.loss.model_bytes.empty())
    throw DataError("training options with a custom loss given as bytes cannot be stored; give its file (model_path)");
  nlohmann::json groups = nlohmann::json::array();
  for (const auto& g : o.optimizer.groups) {
    nlohmann::json j{{"pattern", g.pattern}};
    if (g.lr) j["lr"] = *g.lr;
    if (g.weight_decay) j["weight_decay"] = *g.weight_decay;
    groups.push_back(j);
  }
  nlohmann::json j = fields_to_json<TrainingOptions>(kTrainingFields, o);
  j["format"] = kTrainingOptionsFormat;
  j["loss"] = fields_to_json<LossOptions>(kLossFields, o.loss);
  j["loss"]["detection"] = fields_to_json<DetectionLossOptions>(kDetectionLossFields, o.loss.detection);
  j["optimizer"] = fields_to_json<OptimizerOptions>(kOptimizerFields, o.optimizer);
  j["optimizer"]["groups"] = groups;
  j["schedule"] = format_schedule(o.schedule);
  j["total_steps"] = o.total_steps;
  return j;
}

TrainingOptions options_from_json(const nlohmann::json& j) {
  TrainingOptions o;
  fields_from_json<TrainingOptions>(kTrainingFields, j, "", o);
  fields_from_json<LossOptions>(kLossFields, j.at("loss"), "loss.", o.loss);
  if (j.at("loss").contains("detection"))  // added later: older files keep the defaults
    fields_from_json<DetectionLossOptions>(kDetectionLossFields, j.at("loss").at("detection"), "loss.detection.",
                                           o.loss.detection);
  const auto& optimizer = j.at("optimizer");
  fields_from_json<OptimizerOptions>(kOptimizerFields, optimizer, "optimizer.", o.optimizer);
  for (const auto& g : optimizer.at("groups")) {
    ParamGroup group{g.at("pattern")};
    if (g.contains("lr")) group.lr = g.at("lr").get<double>();
    if (g.contains("weight_decay")) group.weight_decay = g.at("weight_decay").get<double>();
    o.optimizer.groups.push_back(group);
  }
  o.schedule = parse_schedule(j.at("schedule"));
  o.total_steps = j.at("total_steps");
  return o;
}

std::string format_training_options(const TrainingOptions& options) { return options_to_json(options).dump(2); }

TrainingOptions parse_training_options(const std::string& json) {
  try {
    return options_from_json(nlohmann::json::parse(json));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw DataError(std::string("invalid training options: ") + e.what());
  }
}

}  // namespace onnxtrain
