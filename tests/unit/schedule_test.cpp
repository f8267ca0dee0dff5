#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "onnxtrain/errors.h"
#include "onnxtrain/schedule.h"

using namespace onnxtrain;

namespace {

struct ScheduleGolden {
  const char* spec;
  double base_lr;
  int64_t total_steps;
  const char* torch;
  std::vector<double> lrs;
};

// torch.optim.lr_scheduler (PyTorch 1.13) sequences; tests/data/optim/make_schedule_goldens.py.
const std::vector<ScheduleGolden> kGoldens = {
#include "tests/data/optim/schedule_goldens.inc"
};

TEST(Schedule, MatchesTorchSchedulers) {
  ASSERT_GE(kGoldens.size(), 20u);
  for (const auto& g : kGoldens) {
    SCOPED_TRACE(std::string(g.spec) + " vs torch " + g.torch);
    LrSchedule schedule(parse_schedule(g.spec), g.base_lr, g.total_steps);
    for (size_t t = 0; t < g.lrs.size(); ++t) {
      const double lr = schedule.lr(static_cast<int64_t>(t));
      EXPECT_NEAR(lr, g.lrs[t], 1e-9 * std::abs(g.lrs[t])) << "step " << t;
      EXPECT_EQ(lr, scheduled_lr(schedule.options(), g.base_lr, g.total_steps, static_cast<int64_t>(t)));
    }
  }
}

TEST(Schedule, EveryKindIsCovered) {
  std::vector<std::string> kinds;
  for (const auto& g : kGoldens) kinds.push_back(schedule_kind_name(parse_schedule(g.spec).kind));
  for (const char* kind : {"constant", "step", "multistep", "exponential", "cosine", "linear", "onecycle"})
    EXPECT_NE(std::find(kinds.begin(), kinds.end(), kind), kinds.end()) << kind;
}

TEST(Schedule, HoldsTheFinalValueAfterTheLastStep) {
  LrSchedule cosine(parse_schedule("cosine:0.001:warmup_steps=10"), 0.1, 60);
  EXPECT_DOUBLE_EQ(cosine.lr(60), 0.001);
  EXPECT_EQ(cosine.lr(61), cosine.lr(60));
  EXPECT_EQ(cosine.lr(1000), cosine.lr(60));
  LrSchedule linear(parse_schedule("linear:0.1"), 0.02, 40);
  EXPECT_DOUBLE_EQ(linear.lr(40), 0.002);
  EXPECT_EQ(linear.lr(500), linear.lr(40));
  LrSchedule onecycle(parse_schedule("onecycle"), 0.1, 100);
  EXPECT_EQ(onecycle.lr(100), onecycle.lr(99));
  EXPECT_EQ(onecycle.lr(12345), onecycle.lr(99));
  // Kinds without an end go on.
  LrSchedule exponential(parse_schedule("exponential:0.5"), 1.0, 0);
  EXPECT_EQ(exponential.lr(10), std::pow(0.5, 10));
  EXPECT_THROW(exponential.lr(-1), DataError);
}

TEST(Schedule, OnecycleMaxLrDefaultsToTheBaseLr) {
  LrSchedule a(parse_schedule("onecycle"), 0.3, 50), b(parse_schedule("onecycle:0.3"), 1.0, 50);
  for (int64_t t = 0; t < 50; ++t) EXPECT_EQ(a.lr(t), b.lr(t));
  EXPECT_NEAR(a.lr(0), 0.3 / 25, 1e-15);  // initial lr = max_lr / div_factor
}

TEST(Schedule, WarmupFromZero) {
  // torch's LinearLR cannot start at 0; we can.
  LrSchedule s(parse_schedule("cosine:warmup_steps=4:warmup_start_factor=0"), 1.0, 14);
  EXPECT_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(1), 0.25);
  EXPECT_DOUBLE_EQ(s.lr(4), 1.0);
  EXPECT_DOUBLE_EQ(s.lr(9), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(14), 0.0);
}

TEST(Schedule, ParsesTheGrammar) {
  ScheduleOptions o = parse_schedule("multistep:60,30:0.5:warmup_steps=3");
  EXPECT_EQ(o.kind, ScheduleOptions::Kind::MultiStep);
  EXPECT_EQ(o.milestones, (std::vector<int64_t>{30, 60}));
  EXPECT_EQ(o.gamma, 0.5);
  EXPECT_EQ(o.warmup_steps, 3);

  o = parse_schedule("step:30");
  EXPECT_EQ(o.step_size, 30);
  EXPECT_EQ(o.gamma, 0.1);

  o = parse_schedule("onecycle:max_lr=0.4:three_phase=1:anneal=linear:final_div_factor=1e3");
  EXPECT_EQ(o.kind, ScheduleOptions::Kind::OneCycle);
  EXPECT_EQ(o.max_lr, 0.4);
  EXPECT_TRUE(o.three_phase);
  EXPECT_EQ(o.anneal, ScheduleOptions::Anneal::Linear);
  EXPECT_EQ(o.final_div_factor, 1000.0);
  EXPECT_EQ(o.pct_start, 0.3);

  o = parse_schedule("cosine:min_lr=1e-5:warmup_start_factor=0.001");
  EXPECT_EQ(o.min_lr, 1e-5);
  EXPECT_EQ(o.warmup_start_factor, 0.001);
  EXPECT_EQ(parse_schedule("exponential:gamma=0.9").gamma, 0.9);
  EXPECT_EQ(parse_schedule("constant"), ScheduleOptions{});
}

TEST(Schedule, FormatRoundTrips) {
  for (const auto& g : kGoldens) {
    ScheduleOptions o = parse_schedule(g.spec);
    EXPECT_EQ(parse_schedule(format_schedule(o)), o) << g.spec << " -> " << format_schedule(o);
  }
  EXPECT_EQ(format_schedule(parse_schedule("multistep:60,30:0.5:warmup_steps=3")), "multistep:30,60:0.5:warmup_steps=3");
  EXPECT_EQ(format_schedule(parse_schedule("cosine")), "cosine:0");
  EXPECT_EQ(format_schedule(parse_schedule("onecycle:anneal=linear")), "onecycle:0:anneal=linear");
  ScheduleOptions o;
  o.kind = ScheduleOptions::Kind::MultiStep;
  o.gamma = 0.3;
  EXPECT_EQ(parse_schedule(format_schedule(o)), o);
  o.kind = ScheduleOptions::Kind::Cosine;
  o.gamma = 0.1;
  o.min_lr = 0.1 + 0.2;  // shortest exact form
  EXPECT_EQ(format_schedule(o), "cosine:0.30000000000000004");
  EXPECT_EQ(parse_schedule(format_schedule(o)), o);
}

void expect_error(const std::string& spec, const std::string& fragment) {
  try {
    parse_schedule(spec);
    ADD_FAILURE() << "\"" << spec << "\" parsed";
  } catch (const DataError& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find(fragment), std::string::npos) << spec << ": " << message;
    EXPECT_NE(message.find("\"" + spec + "\""), std::string::npos) << message;
  }
}

TEST(Schedule, MalformedStringsAreClearErrors) {
  expect_error("", "empty");
  expect_error("cosinus", "unknown kind \"cosinus\" (expected one of constant, step, multistep");
  expect_error("step:x", "step_size \"x\" is not an integer");
  expect_error("step:30:0.1:7", "too many positional fields for step (at most 2: step_size, gamma)");
  expect_error("step:0", "step_size must be >= 1");
  expect_error("step:30:-1", "gamma must be > 0");
  expect_error("step:30:nan", "gamma \"nan\" is not a finite number");
  expect_error("step:3.5", "not an integer");
  expect_error("multistep:30,,60", "milestone \"\" is not an integer");
  expect_error("multistep:30,-2", "milestones must be >= 0");
  expect_error("exponential", "exponential needs gamma");
  expect_error("exponential:0.9x", "gamma \"0.9x\" is not a finite number");
  expect_error("cosine:min_lr=-1", "min_lr must be >= 0");
  expect_error("cosine:gamma=0.1", "key \"gamma\" does not apply to cosine (keys: min_lr, warmup_steps");
  expect_error("cosine:warmup_steps=5:1e-5", "positional field \"1e-5\" after key=value fields");
  expect_error("cosine:1e-5:min_lr=1e-4", "min_lr is given twice");
  expect_error("cosine::warmup_steps=5", "empty field 2");
  expect_error("cosine:warmup_steps=", "key \"warmup_steps\" has no value");
  expect_error("cosine:=3", "has no key");
  expect_error("cosine:warmup_start_factor=2", "warmup_start_factor must be in [0, 1]");
  expect_error("linear:1.5", "final_factor must be in [0, 1]");
  expect_error("onecycle:warmup_steps=5", "key \"warmup_steps\" does not apply to onecycle");
  expect_error("onecycle:anneal=cosine", "anneal must be cos or linear");
  expect_error("onecycle:three_phase=yes", "three_phase must be true, false, 1 or 0");
  expect_error("onecycle:pct_start=1.5", "pct_start must be in [0, 1]");
  expect_error("onecycle:div_factor=0", "div_factor must be > 0");
  expect_error("constant:0.1", "too many positional fields for constant (at most 0: none)");
  expect_error("constant:bogus=1", "key \"bogus\" does not apply to constant");
}

TEST(Schedule, StepCountsAreValidated) {
  EXPECT_THROW(LrSchedule(parse_schedule("cosine"), 0.1, 0), DataError);
  EXPECT_THROW(LrSchedule(parse_schedule("cosine:warmup_steps=10"), 0.1, 10), DataError);
  EXPECT_THROW(LrSchedule(parse_schedule("linear"), 0.1, -1), DataError);
  EXPECT_THROW(LrSchedule(parse_schedule("onecycle"), 0.1, 0), DataError);
  EXPECT_THROW(LrSchedule(parse_schedule("onecycle:pct_start=0.1"), 0.1, 10), DataError);  // torch: 0 / 0
  EXPECT_THROW(LrSchedule(parse_schedule("constant"), -0.1, 10), DataError);
  EXPECT_THROW(LrSchedule(parse_schedule("constant"), NAN, 10), DataError);
  EXPECT_NO_THROW(LrSchedule(parse_schedule("step:10"), 0.1, 0));
  ScheduleOptions o;
  o.kind = ScheduleOptions::Kind::OneCycle;
  o.warmup_steps = 3;
  EXPECT_THROW(LrSchedule(o, 0.1, 100), DataError);
}

}  // namespace
