#pragma once
// Progress of one training epoch on stderr: a redrawn bar on a terminal, periodic plain
// lines otherwise (so CI logs stay readable), nothing in quiet mode.
//   bar:  epoch 3/10 [#########...........] 45/120 loss 0.2345 1234 samples/s ETA 00:12
//   log:  epoch 3/10 step 45/120 (38%) loss 0.2345 1234 samples/s ETA 00:12
#include <cstdint>
#include <cstdio>
#include <functional>
#include <ostream>
#include <string>
#include <string_view>

namespace onnxtrain::cli {

enum class ProgressMode { Bar, Log, Quiet };

// Monotonic seconds; injectable so tests control time.
using ProgressClock = std::function<double()>;
double steady_seconds();

// Quiet when asked, a bar when `stream` is a terminal (not TERM=dumb), plain lines otherwise.
ProgressMode progress_mode_for(bool quiet, std::FILE* stream = stderr);
// Width of the terminal behind `stream` in columns, 0 when unknown.
int terminal_columns(std::FILE* stream = stderr);

struct ProgressOptions {
  ProgressMode mode = ProgressMode::Log;
  double redraw_interval = 0.1;  // bar: seconds between redraws (at most ~10/s)
  double log_interval = 10;      // log: a line at least this often (seconds) ...
  double log_fraction = 0.1;     // ... and each time another 10% of the epoch is done
  int bar_width = 30;            // cells of the bar; shrunk to fit `columns`
  int columns = 0;               // terminal width, 0 = unknown (no shrinking)
};

class EpochProgress {
 public:
  EpochProgress(std::ostream& out, ProgressOptions options, ProgressClock clock = steady_seconds);

  // Starts epoch `epoch` of `epochs` (1-based) with `steps` optimizer steps (0 = unknown).
  void start_epoch(int epoch, int epochs, int64_t steps);
  // After each step: `step` steps done in this epoch, `loss` the running mean loss of the
  // epoch, `samples` processed in this epoch. Draws only when the mode's interval is due.
  void update(int64_t step, double loss, int64_t samples);
  // Ends the epoch: the final state with `extra` appended (e.g. "val_loss 0.31"), then a
  // newline. Call once per start_epoch.
  void finish(std::string_view extra = {});

  // Seconds since start_epoch.
  double elapsed() const;

 private:
  std::string status(bool bar, bool final_line) const;
  void draw_bar(const std::string& line);
  int64_t log_mark_after(int64_t step) const;  // 0: no fraction marks

  std::ostream& out_;
  ProgressOptions options_;
  ProgressClock clock_;
  int epoch_ = 0, epochs_ = 0;
  int64_t steps_ = 0, step_ = 0, samples_ = 0;
  int64_t next_log_step_ = 0;
  double loss_ = 0, start_ = 0, last_draw_ = 0;
  bool drawn_ = false;
  size_t last_length_ = 0;
};

// "mm:ss", or "h:mm:ss" from an hour on; "--:--" for negative or non-finite seconds.
std::string format_duration(double seconds);

}  // namespace onnxtrain::cli
