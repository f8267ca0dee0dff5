#include "tools/cli/fit_progress.h"

#include <cstdio>

namespace onnxtrain::cli {

std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

FitProgress::FitProgress(bool quiet, std::ostream& out)
    : bar_(out, ProgressOptions{.mode = progress_mode_for(quiet), .columns = terminal_columns()}) {}

void FitProgress::on_epoch_begin(const EpochBeginEvent& e) {
  bar_.start_epoch(static_cast<int>(e.epoch), static_cast<int>(e.epochs), e.batches);
  open_ = true;
}

void FitProgress::on_step_end(const StepEvent& e) { bar_.update(e.batch, e.epoch_loss, e.epoch_samples); }

void FitProgress::on_epoch_end(const EpochEndEvent& e) {
  std::string extra;
  if (e.val_loss) extra = "val_loss " + fixed(*e.val_loss);
  if (e.val_metric) extra += "  val_" + e.metric + " " + fixed(*e.val_metric);
  bar_.finish(extra);
  open_ = false;
}

void FitProgress::on_fit_end(const FitResult& result) {
  if (!open_) return;
  bar_.finish(result.status == FitStatus::Interrupted ? "interrupted" : result.status == FitStatus::Failed ? "failed" : "");
  open_ = false;
}

}  // namespace onnxtrain::cli
