#pragma once
// Where a fit stands: stored in checkpoint notes so a resumed fit continues exactly (the
// data position, the best score, the partial epoch and optimizer step, the curves).
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace onnxtrain {

struct FitState {
  int64_t micro = 0;  // batches trained
  double best = std::numeric_limits<double>::quiet_NaN();
  int bad_epochs = 0;
  // The current epoch and optimizer step so far.
  double epoch_loss_sum = 0, step_loss_sum = 0;
  int64_t epoch_samples = 0, step_micro = 0;
  std::vector<double> step_parts_sum;  // the loss parts' sums over the step so far (detection)
  // One value per finished epoch.
  std::vector<double> train_loss, val_loss, val_metric;

  std::string to_json() const;
  // Throws DataError naming `source` when the text is not a fit state.
  static FitState from_json(const std::string& text, const std::string& source);
};

// results.svg: training and validation loss per epoch, the validation metric on the
// right axis.
std::string fit_curves_svg(const FitState& state, const std::string& metric);

}  // namespace onnxtrain
