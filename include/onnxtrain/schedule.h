#pragma once
// Learning-rate schedules: the learning rate of optimizer step t (0-based) as a pure function
// of t, a base learning rate and the planned number of steps. Every kind gives the values
// torch.optim.lr_scheduler (PyTorch 1.13) gives for the same settings, i.e. the `lr` of the
// optimizer's param group while it takes its t-th step (after t calls of scheduler.step()).
// The values are computed in closed form in double; torch's recursive updates agree to a
// few ulps.
//
// State: a schedule has no state besides the step. Checkpoints store the optimizer step
// count (and the schedule string from format_schedule, the base lr and the total steps);
// a resumed run rebuilds the LrSchedule from them and asks lr(step).
//
// Kinds and formulas (b = base lr, T = total steps, t = step, W = warmup_steps,
// s = warmup_start_factor):
//   constant     b                                                  (no scheduler)
//   step         b * gamma^floor(t / step_size)                     StepLR(step_size, gamma)
//   multistep    b * gamma^(number of milestones <= t)              MultiStepLR(milestones, gamma)
//   exponential  b * gamma^t                                        ExponentialLR(gamma)
//   cosine       min_lr + (b - min_lr) * (1 + cos(pi * t / T)) / 2  CosineAnnealingLR(T, min_lr)
//                reaches min_lr at t = T and holds it after (torch's rises again after T).
//   linear       b * (1 + (final_factor - 1) * t / T)               LinearLR(1, final_factor, T)
//                reaches b * final_factor at t = T and holds it after.
//   onecycle     torch's OneCycleLR(max_lr, total_steps = T, pct_start, anneal_strategy,
//                div_factor, final_div_factor, three_phase): initial = max_lr / div_factor,
//                min = initial / final_div_factor; two phases initial -> max_lr over steps
//                [0, pct_start*T - 1] and max_lr -> min up to step T - 1 (three_phase: initial
//                -> max_lr, max_lr -> initial ending at 2*pct_start*T - 2, initial -> min),
//                each annealed by cos (end + (start - end) * (1 + cos(pi * pct)) / 2) or
//                linearly. max_lr = 0 means "the base lr". Steps >= T hold the value of T - 1.
//                OneCycle does its own warmup, so warmup_steps must be 0.
// Warmup (every kind but onecycle): for t < W the lr rises linearly from s*b to b,
//   b * (s + (1 - s) * t / W), and from t = W on the kind's formula applies to t - W with
//   T - W total steps (so the cosine anneals from b at t = W to min_lr at t = T, and step /
//   multistep count their steps and milestones from the end of warmup). This is torch's
//   SequentialLR([LinearLR(s, 1.0, W), <kind scheduler>], milestones=[W]); torch's
//   LinearLR needs s > 0, we also accept s = 0.
//
// String grammar (for the CLI), fields separated by ':'; positional fields first, then
// key=value fields in any order (each key at most once):
//   spec        := kind { ":" positional } { ":" key "=" value }
//   constant
//   step        [":" step_size [":" gamma]]          e.g. step:30:0.1
//   multistep   [":" m1,m2,... [":" gamma]]          e.g. multistep:30,60:0.1
//   exponential ":" gamma                            e.g. exponential:0.95 (gamma required)
//   cosine      [":" min_lr]                         e.g. cosine, cosine:1e-5:warmup_steps=500
//   linear      [":" final_factor]                   e.g. linear, linear:0.1:warmup_steps=100
//   onecycle    [":" max_lr]                         e.g. onecycle:0.1:pct_start=0.25:anneal=linear
// Keys (named like the ScheduleOptions fields; a key that does not apply to the kind is an
// error): step_size, gamma, milestones, min_lr, final_factor, warmup_steps,
// warmup_start_factor, max_lr, pct_start, div_factor, final_div_factor, anneal (cos|linear),
// three_phase (true|false|1|0). Numbers are C locale; integers are decimal.
#include <cstdint>
#include <string>
#include <vector>

namespace onnxtrain {

struct ScheduleOptions {
  enum class Kind { Constant, Step, MultiStep, Exponential, Cosine, Linear, OneCycle };
  enum class Anneal { Cos, Linear };

  Kind kind = Kind::Constant;
  // step: decay every step_size steps by gamma. multistep: decay by gamma at each
  // milestone (sorted on use; a repeated milestone decays twice, like torch's Counter).
  // exponential: gamma per step (torch has no default: a string must give it).
  int64_t step_size = 30;
  double gamma = 0.1;
  std::vector<int64_t> milestones;
  // cosine: the floor (torch's eta_min).
  double min_lr = 0.0;
  // linear: the factor of the base lr reached at the last step (torch's end_factor, [0, 1]).
  double final_factor = 0.0;
  // Linear warmup (see above): steps and the starting factor, in [0, 1].
  int64_t warmup_steps = 0;
  double warmup_start_factor = 1.0 / 3.0;  // torch LinearLR's default start_factor
  // onecycle (torch's defaults).
  double max_lr = 0.0;  // 0: the base lr
  double pct_start = 0.3;
  double div_factor = 25.0;
  double final_div_factor = 1e4;
  Anneal anneal = Anneal::Cos;
  bool three_phase = false;

  bool operator==(const ScheduleOptions&) const = default;
};

// "constant", "step", ... and back; unknown names throw DataError.
std::string schedule_kind_name(ScheduleOptions::Kind kind);
ScheduleOptions::Kind parse_schedule_kind(const std::string& name);

// Parses the grammar above; malformed strings throw DataError naming the string and the
// offending field. Fields not given keep the ScheduleOptions defaults. The result is
// checked with validate_schedule(options, 1.0, 0) (values only, not the step counts).
ScheduleOptions parse_schedule(const std::string& spec);
// The canonical string of `options`: the kind, its positional fields, then every other
// field of the kind that differs from the ScheduleOptions default as key=value. Fields
// that do not apply to the kind are not written, so parse_schedule(format_schedule(o)) == o
// when those are at their defaults (and milestones are sorted). Doubles are written in
// the shortest form that reads back exactly.
std::string format_schedule(const ScheduleOptions& options);

// Throws DataError when the options cannot make a schedule (bad factors, empty phases).
// total_steps is needed by cosine, linear and onecycle (and must exceed warmup_steps);
// the other kinds accept total_steps <= 0 ("unknown").
void validate_schedule(const ScheduleOptions& options, double base_lr, int64_t total_steps);

class LrSchedule {
 public:
  // Validates (see validate_schedule).
  LrSchedule(ScheduleOptions options, double base_lr, int64_t total_steps);

  // The learning rate of optimizer step `step` (0-based; negative steps throw DataError).
  double lr(int64_t step) const;

  const ScheduleOptions& options() const { return options_; }
  double base_lr() const { return base_lr_; }
  int64_t total_steps() const { return total_steps_; }

 private:
  double main_lr(int64_t t, int64_t total) const;
  double onecycle_lr(int64_t t) const;

  ScheduleOptions options_;
  double base_lr_;
  int64_t total_steps_;
};

// One-shot form of LrSchedule(options, base_lr, total_steps).lr(step).
double scheduled_lr(const ScheduleOptions& options, double base_lr, int64_t total_steps, int64_t step);

}  // namespace onnxtrain
