#include "tools/cli/progress.h"

#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>

namespace onnxtrain::cli {

namespace {

std::string format(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

// Four decimals read well for typical losses; tiny ones would all print as 0.0000.
std::string format_loss(double loss) {
  if (loss == 0 || !std::isfinite(loss) || std::abs(loss) >= 1e-3) return format("%.4f", loss);
  return format("%.3e", loss);
}

// Appending piece by piece also sidesteps GCC 12's false -Wrestrict on "literal" + string.
template <typename... Parts>
void append(std::string& s, const Parts&... parts) {
  (s.append(parts), ...);
}

}  // namespace

double steady_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

ProgressMode progress_mode_for(bool quiet, std::FILE* stream) {
  if (quiet) return ProgressMode::Quiet;
  // A dumb terminal (e.g. Emacs' shell) shows every carriage return as a new line.
  const char* term = std::getenv("TERM");
  const bool dumb = term && std::string_view(term) == "dumb";
  return ::isatty(::fileno(stream)) && !dumb ? ProgressMode::Bar : ProgressMode::Log;
}

int terminal_columns(std::FILE* stream) {
  struct winsize ws {};
  if (::ioctl(::fileno(stream), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
  return 0;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0 || seconds > 1e9) return "--:--";
  const long long s = std::llround(seconds);
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%02lld:%02lld", s / 60, s % 60);
  return buf;
}

EpochProgress::EpochProgress(std::ostream& out, ProgressOptions options, ProgressClock clock)
    : out_(out), options_(options), clock_(std::move(clock)) {}

void EpochProgress::start_epoch(int epoch, int epochs, int64_t steps) {
  epoch_ = epoch;
  epochs_ = epochs;
  steps_ = std::max<int64_t>(steps, 0);
  step_ = samples_ = 0;
  loss_ = 0;
  start_ = last_draw_ = clock_();
  next_log_step_ = log_mark_after(0);
  drawn_ = false;
  last_length_ = 0;
}

int64_t EpochProgress::log_mark_after(int64_t step) const {
  if (!steps_ || options_.log_fraction <= 0) return 0;
  // The first multiple of log_fraction * steps beyond `step`, with a little slack so that
  // 3 * 0.1 * 100 counts as step 30, not 31.
  const double every = options_.log_fraction * static_cast<double>(steps_);
  const double k = std::floor(static_cast<double>(step) / every + 1e-9) + 1;
  return std::max<int64_t>(step + 1, static_cast<int64_t>(std::ceil(k * every - 1e-9)));
}

double EpochProgress::elapsed() const { return clock_() - start_; }

std::string EpochProgress::status(bool bar, bool final_line) const {
  const double secs = elapsed();
  std::string head = "epoch " + std::to_string(epoch_) + "/" + std::to_string(epochs_);
  std::string count = std::to_string(step_);
  if (steps_) append(count, "/", std::to_string(steps_));
  std::string tail;
  if (step_ > 0) append(tail, " loss ", format_loss(loss_));
  if (secs > 0 && samples_ > 0) append(tail, " ", format("%.0f", static_cast<double>(samples_) / secs), " samples/s");
  if (final_line)
    append(tail, " time ", format_duration(secs));
  else if (steps_ && step_ > 0 && secs > 0)
    append(tail, " ETA ", format_duration(secs / static_cast<double>(step_) * static_cast<double>(steps_ - step_)));

  if (!bar) {
    std::string pct = steps_ ? format(" (%.0f%%)", 100.0 * static_cast<double>(step_) / static_cast<double>(steps_)) : "";
    return head + " step " + count + pct + tail;
  }
  // The bar takes what the terminal leaves; a line longer than the terminal would wrap
  // and every redraw would then start a new line.
  int width = steps_ ? options_.bar_width : 0;
  const int rest = static_cast<int>(head.size() + count.size() + tail.size()) + 4;  // " [", "] "
  if (options_.columns > 0 && width > 0) width = std::min(width, options_.columns - 1 - rest);
  std::string line = head + " ";
  if (width >= 5) {
    const auto filled = static_cast<int>(static_cast<double>(width) * static_cast<double>(std::min(step_, steps_)) /
                                         static_cast<double>(steps_));
    line += '[';
    line.append(filled, '#').append(width - filled, '.').append("] ");
  }
  line += count + tail;
  if (options_.columns > 0 && static_cast<int>(line.size()) >= options_.columns)
    line.resize(static_cast<size_t>(std::max(options_.columns - 1, 0)));
  return line;
}

void EpochProgress::draw_bar(const std::string& line) {
  // Spaces overwrite the rest of a longer previous line without terminal escape codes.
  std::string padding(last_length_ > line.size() ? last_length_ - line.size() : 0, ' ');
  out_ << '\r' << line << padding << std::flush;
  last_length_ = line.size();
  drawn_ = true;
}

void EpochProgress::update(int64_t step, double loss, int64_t samples) {
  step_ = step;
  loss_ = loss;
  samples_ = samples;
  if (options_.mode == ProgressMode::Quiet) return;
  const double now = clock_();
  if (options_.mode == ProgressMode::Bar) {
    if (drawn_ && now - last_draw_ < options_.redraw_interval) return;
    last_draw_ = now;
    draw_bar(status(true, false));
    return;
  }
  // The last step is reported by finish().
  if (steps_ && step_ >= steps_) return;
  const bool fraction_due = next_log_step_ > 0 && step_ >= next_log_step_;
  if (!fraction_due && now - last_draw_ < options_.log_interval) return;
  if (fraction_due) next_log_step_ = log_mark_after(step_);
  last_draw_ = now;
  out_ << status(false, false) << '\n' << std::flush;
}

void EpochProgress::finish(std::string_view extra) {
  if (options_.mode == ProgressMode::Quiet) return;
  std::string suffix;
  if (!extra.empty()) suffix.append(" ").append(extra);
  if (options_.mode == ProgressMode::Bar) {
    draw_bar(status(true, true) + suffix);
    out_ << '\n' << std::flush;
  } else {
    out_ << status(false, true) << suffix << '\n' << std::flush;
  }
  drawn_ = false;
  last_length_ = 0;
}

}  // namespace onnxtrain::cli
