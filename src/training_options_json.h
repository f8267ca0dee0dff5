#pragma once
// TrainingOptions as JSON (the form format_training_options writes and
// export_training_model stores in the model's metadata), generated from the field tables of
// include/onnxtrain/option_fields.h.
#include <nlohmann/json.hpp>

#include "onnxtrain/training.h"

namespace onnxtrain {

inline constexpr const char* kTrainingOptionsFormat = "onnxtrain-training-1";

// Every field but threads; throws DataError for a custom loss given as bytes.
nlohmann::json options_to_json(const TrainingOptions& options);
// Every key must be present (eps and a group's lr / weight_decay only when set); string
// choices are checked against their tables (DataError naming the field).
TrainingOptions options_from_json(const nlohmann::json& json);

}  // namespace onnxtrain
