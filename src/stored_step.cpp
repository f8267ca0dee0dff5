// training_step_of: the optimizer step a training model was exported at.
#include <algorithm>

#include "onnxtrain/training.h"
#include "src/training_session_impl.h"

namespace onnxtrain {

std::optional<int64_t> training_step_of(const Model& model) {
  const auto names = model.initializer_names();
  if (std::find(names.begin(), names.end(), kStepInitializer) == names.end()) return std::nullopt;
  return model.initializer(kStepInitializer).as_int64().at(0);
}

}  // namespace onnxtrain
