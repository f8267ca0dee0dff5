#include "onnxtrain/schedule.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <numbers>
#include <set>

#include "onnxtrain/errors.h"

namespace onnxtrain {

namespace {

using Kind = ScheduleOptions::Kind;

struct KindInfo {
  Kind kind;
  const char* name;
  std::vector<std::string> positional;  // field names, in order
  std::vector<std::string> keys;        // every field that applies (positional included)
};

const std::vector<KindInfo>& kind_table() {
  static const std::vector<std::string> warmup = {"warmup_steps", "warmup_start_factor"};
  auto with_warmup = [](std::vector<std::string> keys) {
    keys.insert(keys.end(), warmup.begin(), warmup.end());
    return keys;
  };
  static const std::vector<KindInfo> table = {
      {Kind::Constant, "constant", {}, with_warmup({})},
      {Kind::Step, "step", {"step_size", "gamma"}, with_warmup({"step_size", "gamma"})},
      {Kind::MultiStep, "multistep", {"milestones", "gamma"}, with_warmup({"milestones", "gamma"})},
      {Kind::Exponential, "exponential", {"gamma"}, with_warmup({"gamma"})},
      {Kind::Cosine, "cosine", {"min_lr"}, with_warmup({"min_lr"})},
      {Kind::Linear, "linear", {"final_factor"}, with_warmup({"final_factor"})},
      {Kind::OneCycle,
       "onecycle",
       {"max_lr"},
       {"max_lr", "pct_start", "div_factor", "final_div_factor", "anneal", "three_phase"}},
  };
  return table;
}

const KindInfo& info_of(Kind kind) {
  for (const auto& info : kind_table())
    if (info.kind == kind) return info;
  throw DataError("learning-rate schedule: unknown kind " + std::to_string(static_cast<int>(kind)));
}

std::string kind_list() {
  std::string out;
  for (const auto& info : kind_table()) out += std::string(out.empty() ? "" : ", ") + info.name;
  return out;
}

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t pos = s.find(sep, start);
    parts.push_back(s.substr(start, pos == std::string::npos ? std::string::npos : pos - start));
    if (pos == std::string::npos) return parts;
    start = pos + 1;
  }
}

std::string format_double(double v) {
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

// Parse helpers: `fail` is called with a reason and must throw.
template <typename Fail>
double parse_double(const std::string& text, const std::string& field, Fail&& fail) {
  double v = 0;
  auto res = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || res.ec != std::errc() || res.ptr != text.data() + text.size() || !std::isfinite(v))
    fail(field + " \"" + text + "\" is not a finite number");
  return v;
}

template <typename Fail>
int64_t parse_int(const std::string& text, const std::string& field, Fail&& fail) {
  int64_t v = 0;
  auto res = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || res.ec != std::errc() || res.ptr != text.data() + text.size())
    fail(field + " \"" + text + "\" is not an integer");
  return v;
}

[[noreturn]] void invalid(const std::string& what) { throw DataError("learning-rate schedule: " + what); }

void validate_values(const ScheduleOptions& o) {
  const std::string kind = schedule_kind_name(o.kind);
  auto need = [&](bool ok, const std::string& what) {
    if (!ok) invalid(kind + ": " + what);
  };
  need(o.warmup_steps >= 0, "warmup_steps must be >= 0, got " + std::to_string(o.warmup_steps));
  need(o.warmup_start_factor >= 0 && o.warmup_start_factor <= 1,
       "warmup_start_factor must be in [0, 1], got " + format_double(o.warmup_start_factor));
  switch (o.kind) {
    case Kind::Constant:
      break;
    case Kind::Step:
      need(o.step_size >= 1, "step_size must be >= 1, got " + std::to_string(o.step_size));
      need(std::isfinite(o.gamma) && o.gamma > 0, "gamma must be > 0, got " + format_double(o.gamma));
      break;
    case Kind::MultiStep:
      for (int64_t m : o.milestones) need(m >= 0, "milestones must be >= 0, got " + std::to_string(m));
      need(std::isfinite(o.gamma) && o.gamma > 0, "gamma must be > 0, got " + format_double(o.gamma));
      break;
    case Kind::Exponential:
      need(std::isfinite(o.gamma) && o.gamma > 0, "gamma must be > 0, got " + format_double(o.gamma));
      break;
    case Kind::Cosine:
      need(std::isfinite(o.min_lr) && o.min_lr >= 0, "min_lr must be >= 0, got " + format_double(o.min_lr));
      break;
    case Kind::Linear:
      need(o.final_factor >= 0 && o.final_factor <= 1,
           "final_factor must be in [0, 1], got " + format_double(o.final_factor));
      break;
    case Kind::OneCycle:
      need(o.warmup_steps == 0, "warmup_steps must be 0 (onecycle warms up itself; see pct_start)");
      need(std::isfinite(o.max_lr) && o.max_lr >= 0, "max_lr must be >= 0, got " + format_double(o.max_lr));
      need(o.pct_start >= 0 && o.pct_start <= 1, "pct_start must be in [0, 1], got " + format_double(o.pct_start));
      need(std::isfinite(o.div_factor) && o.div_factor > 0,
           "div_factor must be > 0, got " + format_double(o.div_factor));
      need(std::isfinite(o.final_div_factor) && o.final_div_factor > 0,
           "final_div_factor must be > 0, got " + format_double(o.final_div_factor));
      break;
  }
}

// Positional/keyed field assignment for parse_schedule.
template <typename Fail>
void set_field(ScheduleOptions& o, const std::string& key, const std::string& value, Fail&& fail) {
  if (key == "step_size") {
    o.step_size = parse_int(value, key, fail);
  } else if (key == "gamma") {
    o.gamma = parse_double(value, key, fail);
  } else if (key == "milestones") {
    o.milestones.clear();
    if (value.empty()) fail("milestones is empty");
    for (const auto& m : split(value, ',')) o.milestones.push_back(parse_int(m, "milestone", fail));
    std::sort(o.milestones.begin(), o.milestones.end());
  } else if (key == "min_lr") {
    o.min_lr = parse_double(value, key, fail);
  } else if (key == "final_factor") {
    o.final_factor = parse_double(value, key, fail);
  } else if (key == "warmup_steps") {
    o.warmup_steps = parse_int(value, key, fail);
  } else if (key == "warmup_start_factor") {
    o.warmup_start_factor = parse_double(value, key, fail);
  } else if (key == "max_lr") {
    o.max_lr = parse_double(value, key, fail);
  } else if (key == "pct_start") {
    o.pct_start = parse_double(value, key, fail);
  } else if (key == "div_factor") {
    o.div_factor = parse_double(value, key, fail);
  } else if (key == "final_div_factor") {
    o.final_div_factor = parse_double(value, key, fail);
  } else if (key == "anneal") {
    if (value == "cos")
      o.anneal = ScheduleOptions::Anneal::Cos;
    else if (value == "linear")
      o.anneal = ScheduleOptions::Anneal::Linear;
    else
      fail("anneal must be cos or linear, got \"" + value + "\"");
  } else if (key == "three_phase") {
    if (value == "true" || value == "1")
      o.three_phase = true;
    else if (value == "false" || value == "0")
      o.three_phase = false;
    else
      fail("three_phase must be true, false, 1 or 0, got \"" + value + "\"");
  } else {
    fail("unknown key \"" + key + "\"");
  }
}

std::string field_value(const ScheduleOptions& o, const std::string& key) {
  if (key == "step_size") return std::to_string(o.step_size);
  if (key == "gamma") return format_double(o.gamma);
  if (key == "milestones") {
    std::vector<int64_t> sorted = o.milestones;
    std::sort(sorted.begin(), sorted.end());
    std::string out;
    for (int64_t m : sorted) {
      if (!out.empty()) out += ',';
      out += std::to_string(m);
    }
    return out;
  }
  if (key == "min_lr") return format_double(o.min_lr);
  if (key == "final_factor") return format_double(o.final_factor);
  if (key == "warmup_steps") return std::to_string(o.warmup_steps);
  if (key == "warmup_start_factor") return format_double(o.warmup_start_factor);
  if (key == "max_lr") return format_double(o.max_lr);
  if (key == "pct_start") return format_double(o.pct_start);
  if (key == "div_factor") return format_double(o.div_factor);
  if (key == "final_div_factor") return format_double(o.final_div_factor);
  if (key == "anneal") return o.anneal == ScheduleOptions::Anneal::Cos ? "cos" : "linear";
  if (key == "three_phase") return o.three_phase ? "true" : "false";
  invalid("unknown field " + key);
}

// torch OneCycleLR's annealing functions, term for term.
double anneal_cos(double start, double end, double pct) {
  const double cos_out = std::cos(std::numbers::pi * pct) + 1;
  return end + (start - end) / 2.0 * cos_out;
}
double anneal_linear(double start, double end, double pct) { return (end - start) * pct + start; }

}  // namespace

std::string schedule_kind_name(ScheduleOptions::Kind kind) { return info_of(kind).name; }

ScheduleOptions::Kind parse_schedule_kind(const std::string& name) {
  for (const auto& info : kind_table())
    if (name == info.name) return info.kind;
  invalid("unknown kind \"" + name + "\" (expected one of " + kind_list() + ")");
}

ScheduleOptions parse_schedule(const std::string& spec) {
  auto fail = [&](const std::string& why) {
    throw DataError("learning-rate schedule \"" + spec + "\": " + why);
  };
  if (spec.empty()) fail("empty string (expected one of " + kind_list() + ")");
  auto fields = split(spec, ':');
  ScheduleOptions o;
  bool known = false;
  for (const auto& info : kind_table())
    if (fields[0] == info.name) {
      o.kind = info.kind;
      known = true;
    }
  if (!known) fail("unknown kind \"" + fields[0] + "\" (expected one of " + kind_list() + ")");
  const KindInfo& info = info_of(o.kind);

  std::set<std::string> seen;
  size_t positional = 0;
  bool named = false;
  for (size_t i = 1; i < fields.size(); ++i) {
    const std::string& f = fields[i];
    if (f.empty()) fail("empty field " + std::to_string(i + 1));
    std::string key, value;
    size_t eq = f.find('=');
    if (eq == std::string::npos) {
      if (named) fail("positional field \"" + f + "\" after key=value fields");
      if (positional >= info.positional.size())
        fail("too many positional fields for " + std::string(info.name) + " (at most " +
             std::to_string(info.positional.size()) + ": " +
             (info.positional.empty() ? std::string("none") : [&] {
               std::string s;
               for (const auto& p : info.positional) s += (s.empty() ? "" : ", ") + p;
               return s;
             }()) + ")");
      key = info.positional[positional++];
      value = f;
    } else {
      named = true;
      key = f.substr(0, eq);
      value = f.substr(eq + 1);
      if (key.empty()) fail("field \"" + f + "\" has no key");
      if (std::find(info.keys.begin(), info.keys.end(), key) == info.keys.end()) {
        std::string keys;
        for (const auto& k : info.keys) keys += (keys.empty() ? "" : ", ") + k;
        fail("key \"" + key + "\" does not apply to " + info.name + " (keys: " + keys + ")");
      }
      if (value.empty()) fail("key \"" + key + "\" has no value");
    }
    if (!seen.insert(key).second) fail(key + " is given twice");
    set_field(o, key, value, fail);
  }
  if (o.kind == Kind::Exponential && !seen.count("gamma")) fail("exponential needs gamma, e.g. exponential:0.95");
  try {
    validate_values(o);
  } catch (const DataError& e) {
    fail(std::string(e.what()).substr(std::string("learning-rate schedule: ").size()));
  }
  return o;
}

std::string format_schedule(const ScheduleOptions& options) {
  const KindInfo& info = info_of(options.kind);
  const ScheduleOptions defaults;
  std::string out = info.name;
  for (const auto& p : info.positional) {
    std::string v = field_value(options, p);
    if (v.empty()) break;  // empty milestones: nothing positional can follow
    out += ":" + v;
  }
  for (const auto& k : info.keys) {
    if (std::find(info.positional.begin(), info.positional.end(), k) != info.positional.end()) continue;
    if (field_value(options, k) != field_value(defaults, k)) out += ":" + k + "=" + field_value(options, k);
  }
  // A positional skipped for empty milestones must be written by key.
  if (options.kind == Kind::MultiStep && options.milestones.empty())
    out += ":gamma=" + field_value(options, "gamma");
  return out;
}

void validate_schedule(const ScheduleOptions& o, double base_lr, int64_t total_steps) {
  if (!std::isfinite(base_lr) || base_lr < 0) invalid("base lr must be >= 0, got " + format_double(base_lr));
  validate_values(o);
  const std::string kind = schedule_kind_name(o.kind);
  switch (o.kind) {
    case Kind::Cosine:
    case Kind::Linear:
      if (total_steps <= o.warmup_steps)
        invalid(kind + " needs total steps > warmup_steps, got total steps " + std::to_string(total_steps) +
                " and warmup_steps " + std::to_string(o.warmup_steps));
      break;
    case Kind::OneCycle:
      if (total_steps <= 0) invalid("onecycle needs total steps > 0, got " + std::to_string(total_steps));
      // torch divides by zero at step 0 when the first phase ends at step 0.
      if (static_cast<double>(o.pct_start * static_cast<double>(total_steps)) - 1 == 0)
        invalid("onecycle: pct_start * total steps must not be 1 (an empty first phase)");
      break;
    default:
      break;
  }
}

LrSchedule::LrSchedule(ScheduleOptions options, double base_lr, int64_t total_steps)
    : options_(std::move(options)), base_lr_(base_lr), total_steps_(total_steps) {
  validate_schedule(options_, base_lr_, total_steps_);
  std::sort(options_.milestones.begin(), options_.milestones.end());
}

double LrSchedule::lr(int64_t step) const {
  if (step < 0) invalid("negative step " + std::to_string(step));
  const ScheduleOptions& o = options_;
  if (o.kind == Kind::OneCycle) return onecycle_lr(std::min(step, total_steps_ - 1));
  const int64_t w = o.warmup_steps;
  if (step < w) {
    // torch LinearLR(start_factor=s, end_factor=1, total_iters=W), closed form.
    const double s = o.warmup_start_factor;
    return base_lr_ * (s + (1.0 - s) * static_cast<double>(step) / static_cast<double>(w));
  }
  return main_lr(step - w, total_steps_ - w);
}

double LrSchedule::main_lr(int64_t t, int64_t total) const {
  const ScheduleOptions& o = options_;
  const double b = base_lr_;
  switch (o.kind) {
    case Kind::Constant:
      return b;
    case Kind::Step:
      return b * std::pow(o.gamma, static_cast<double>(t / o.step_size));
    case Kind::MultiStep: {
      auto passed = std::upper_bound(o.milestones.begin(), o.milestones.end(), t) - o.milestones.begin();
      return b * std::pow(o.gamma, static_cast<double>(passed));
    }
    case Kind::Exponential:
      return b * std::pow(o.gamma, static_cast<double>(t));
    case Kind::Cosine: {
      t = std::min(t, total);
      return o.min_lr + (b - o.min_lr) *
                            (1 + std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(total))) / 2;
    }
    case Kind::Linear: {
      t = std::min(t, total);
      return b * (1.0 + (o.final_factor - 1.0) * static_cast<double>(t) / static_cast<double>(total));
    }
    case Kind::OneCycle:
      break;
  }
  return b;
}

double LrSchedule::onecycle_lr(int64_t step) const {
  const ScheduleOptions& o = options_;
  const double max_lr = o.max_lr > 0 ? o.max_lr : base_lr_;
  const double initial = max_lr / o.div_factor;
  const double min_lr = initial / o.final_div_factor;
  const double total = static_cast<double>(total_steps_);
  struct Phase {
    double end_step, start_lr, end_lr;
  };
  std::vector<Phase> phases;
  if (o.three_phase) {
    phases = {{o.pct_start * total - 1, initial, max_lr},
              {2 * o.pct_start * total - 2, max_lr, initial},
              {total - 1, initial, min_lr}};
  } else {
    phases = {{o.pct_start * total - 1, initial, max_lr}, {total - 1, max_lr, min_lr}};
  }
  const double t = static_cast<double>(step);
  double start_step = 0;
  for (size_t i = 0; i < phases.size(); ++i) {
    const Phase& p = phases[i];
    if (t <= p.end_step || i + 1 == phases.size()) {
      const double pct = (t - start_step) / (p.end_step - start_step);
      return o.anneal == ScheduleOptions::Anneal::Cos ? anneal_cos(p.start_lr, p.end_lr, pct)
                                                      : anneal_linear(p.start_lr, p.end_lr, pct);
    }
    start_step = p.end_step;
  }
  return min_lr;
}

double scheduled_lr(const ScheduleOptions& options, double base_lr, int64_t total_steps, int64_t step) {
  return LrSchedule(options, base_lr, total_steps).lr(step);
}

}  // namespace onnxtrain
