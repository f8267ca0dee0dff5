#pragma once
// The progress bar of `onnxtrain train`: a Trainer callback drawing each epoch on stderr
// (see progress.h for the modes) and ending it with the validation results.
#include <iostream>
#include <optional>

#include "onnxtrain/trainer.h"
#include "tools/cli/progress.h"

namespace onnxtrain::cli {

class FitProgress : public Callback {
 public:
  explicit FitProgress(bool quiet, std::ostream& out = std::cerr);

  void on_epoch_begin(const EpochBeginEvent& e) override;
  void on_step_end(const StepEvent& e) override;
  void on_epoch_end(const EpochEndEvent& e) override;
  // An epoch cut short (stop request, divergence) ends its line here.
  void on_fit_end(const FitResult& result) override;

 private:
  EpochProgress bar_;
  bool open_ = false;        // an epoch line is drawn and not finished
};

// A value with `digits` decimals, as the training messages show them.
std::string fixed(double value, int digits = 4);

}  // namespace onnxtrain::cli
