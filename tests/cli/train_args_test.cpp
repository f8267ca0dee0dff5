// The training flags generated from the options tables: one flag per row, each reaching its
// field, the CLI-only shorthands, and config.toml files of earlier versions.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "onnxtrain/option_fields.h"
#include "tests/support/test_support.h"
#include "tools/cli/train_args.h"

using namespace onnxtrain;
using namespace onnxtrain::cli;
namespace fs = std::filesystem;

namespace {

// A command like `onnxtrain train`: it declares --label and --seed itself.
struct Command {
  CLI::App app{"test"};
  TrainingFlags flags;
  std::string label = "label";
  uint64_t seed = 0;
  Command() {
    app.add_option("--label", label, "label");
    app.add_option("--seed", seed, "seed");
    add_loss_flags(&app, flags);
    add_optimizer_flags(&app, flags);
    app.set_config("--config");
  }
  TrainingOptions parse(std::vector<std::string> args, std::optional<TrainingOptions> base = std::nullopt) {
    std::reverse(args.begin(), args.end());
    app.parse(args);
    return training_options(app, flags, base);
  }
};

template <typename Options>
void expect_flags(const CLI::App& app, std::span<const OptionField<Options>> fields) {
  for (const auto& row : fields) {
    const CLI::Option* o = app.get_option_no_throw(std::string(row.flag));
    ASSERT_NE(o, nullptr) << row.flag;
    if (!row.command_flag) {
      EXPECT_EQ(o->get_description().rfind(std::string(row.description), 0), 0u) << row.flag << ": " << o->get_description();
    }
    if (row.choices) {
      for (const Choice& c : row.choices->choices()) {
        EXPECT_NE(o->get_description().find(std::string(c.description)), std::string::npos) << row.flag << " " << c.name;
      }
    }
  }
}

TEST(TrainFlags, EveryTableRowHasItsFlagAndHelp) {
  Command c;
  expect_flags<LossOptions>(c.app, kLossFields);
  expect_flags<DetectionLossOptions>(c.app, kDetectionLossFields);
  expect_flags<OptimizerOptions>(c.app, kOptimizerFields);
  expect_flags<TrainingOptions>(c.app, kTrainingFields);
}

// Every row's flag given with a value off the CLI default reaches its field.
TEST(TrainFlags, EveryFlagReachesItsField) {
  const std::string loss_model = (fs::temp_directory_path() / "onnxtrain_flags_loss.onnx").string();
  std::ofstream(loss_model) << "x";
  Command c;
  std::vector<std::string> args;
  TrainingOptions want = TrainingFlags::cli_defaults();
  auto add = [&]<typename Options>(std::span<const OptionField<Options>> fields, Options& target) {
    for_each_field(fields, target, [&](const auto& row, auto& value) {
      using T = std::decay_t<decltype(value)>;
      const std::string flag(row.flag);
      if (flag == "--loss") return;  // --loss-model sets it
      args.push_back(flag);
      if constexpr (std::is_same_v<T, bool>) {
        args.pop_back();
        if (!value) args.push_back(flag);
        value = true;
      } else if constexpr (std::is_same_v<T, std::string>) {
        std::string v = flag == "--loss-model" ? loss_model : "v" + flag;
        if (flag == "--optimizer") v = "sgd";  // --nesterov needs sgd
        else if (row.choices)
          for (const Choice& choice : row.choices->choices())
            if (choice.name != value) v = std::string(choice.name);
        args.push_back(v);
        value = v;
      } else if constexpr (std::is_same_v<T, std::vector<double>>) {
        args.push_back("0.5,2");
        value = {0.5, 2};
      } else if constexpr (std::is_same_v<T, std::optional<double>>) {
        args.push_back("0.25");
        value = 0.25;
      } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
        args.push_back("p3,p4");
        value = {"p3", "p4"};
      } else {
        args.push_back("5");
        value = 5;
      }
    });
  };
  add.operator()<LossOptions>(kLossFields, want.loss);
  add.operator()<DetectionLossOptions>(kDetectionLossFields, want.loss.detection);
  add.operator()<OptimizerOptions>(kOptimizerFields, want.optimizer);
  add.operator()<TrainingOptions>(kTrainingFields, want);
  want.loss.kind = "custom";
  const TrainingOptions got = c.parse(args);
  EXPECT_EQ(format_training_options(got), format_training_options(want));
  fs::remove(loss_model);
}

TEST(TrainFlags, ShorthandsAliasesAndDefaults) {
  TrainingOptions o = Command().parse({});
  EXPECT_EQ(o.optimizer.kind, "adam");
  EXPECT_EQ(o.optimizer.lr, 1e-3);
  EXPECT_FALSE(o.optimizer.eps.has_value());
  o = Command().parse({"--betas", "0.5,0.75", "--optimizer", "momentum", "--scheduler", "step:3:0.5", "--warmup", "2"});
  EXPECT_EQ(o.optimizer.beta1, 0.5);
  EXPECT_EQ(o.optimizer.beta2, 0.75);
  EXPECT_EQ(o.optimizer.kind, "sgd");
  EXPECT_EQ(o.optimizer.momentum, 0.9);
  EXPECT_EQ(format_schedule(o.schedule), "step:3:0.5:warmup_steps=2");
  EXPECT_EQ(Command().parse({"--optimizer", "momentum", "--momentum", "0.5"}).optimizer.momentum, 0.5);
  EXPECT_THROW(Command().parse({"--optimizer", "adamax"}), CLI::ValidationError);
  EXPECT_THROW(Command().parse({"--bn-running-var", "keras"}), CLI::ValidationError);
  EXPECT_THROW(Command().parse({"--betas", "0.5,0.75", "--beta1", "0.1"}), CLI::ExcludesError);
  EXPECT_THROW(Command().parse({"--nesterov"}), DataError);
}

// A training model's stored options stay unless a flag overrides them.
TEST(TrainFlags, StoredOptionsKeepTheirValuesUnlessGiven) {
  TrainingOptions stored;
  stored.optimizer.kind = "rmsprop";
  stored.optimizer.alpha = 0.5;
  stored.optimizer.eps = 1e-4;
  stored.loss.target = "y";
  stored.schedule = parse_schedule("exponential:0.5");
  TrainingOptions o = Command().parse({"--lr", "0.25"}, stored);
  EXPECT_EQ(o.optimizer.kind, "rmsprop");
  EXPECT_EQ(o.optimizer.alpha, 0.5);
  EXPECT_EQ(o.optimizer.eps, 1e-4);
  EXPECT_EQ(o.optimizer.lr, 0.25);
  EXPECT_EQ(o.loss.target, "y");
  EXPECT_EQ(format_schedule(o.schedule), "exponential:0.5");
  o = Command().parse({"--label", "z", "--alpha", "0.75"}, stored);
  EXPECT_EQ(o.loss.target, "z");
  EXPECT_EQ(o.optimizer.alpha, 0.75);
}

// config.toml as earlier versions wrote it (CLI11's config_to_str of the given flags).
TEST(TrainFlags, ConfigOfTheEarlierFlagsReads) {
  const std::string path = (fs::temp_directory_path() / "onnxtrain_flags_config.toml").string();
  std::ofstream(path) << "label=\"y\"\nloss=\"mse\"\nreduction=\"sum\"\noptimizer=\"sgd\"\nlr=0.004\nmomentum=0.5\n"
                         "nesterov=true\nweight-decay=0.01\nno-decay-bias-norm=true\nbetas=[0.8,0.9]\neps=1e-06\n"
                         "scheduler=\"cosine\"\nwarmup=3\nclip-grad-norm=2\naccumulate=4\nfreeze=\"^fc1\"\nbn=\"frozen\"\n"
                         "seed=9\n";
  Command c;
  TrainingOptions o = c.parse({"--config", path});
  EXPECT_EQ(o.loss.target, "y");
  EXPECT_EQ(o.loss.kind, "mse");
  EXPECT_EQ(o.loss.reduction, "sum");
  EXPECT_EQ(o.optimizer.kind, "sgd");
  EXPECT_EQ(o.optimizer.lr, 0.004);
  EXPECT_EQ(o.optimizer.momentum, 0.5);
  EXPECT_TRUE(o.optimizer.nesterov);
  EXPECT_EQ(o.optimizer.weight_decay, 0.01);
  EXPECT_TRUE(o.optimizer.no_decay_on_bias_and_norm);
  EXPECT_EQ(o.optimizer.beta1, 0.8);
  EXPECT_EQ(o.optimizer.beta2, 0.9);
  EXPECT_EQ(o.optimizer.eps, 1e-6);
  EXPECT_EQ(o.schedule.kind, ScheduleOptions::Kind::Cosine);
  EXPECT_EQ(o.schedule.warmup_steps, 3);
  EXPECT_EQ(o.clip_grad_norm, 2);
  EXPECT_EQ(o.accumulate, 4);
  EXPECT_EQ(o.freeze, "^fc1");
  EXPECT_EQ(o.batchnorm, "frozen");
  EXPECT_EQ(o.seed, 9u);
  // And the config the flags write reads back to the same options.
  const std::string written = c.app.config_to_str(false, false);
  std::ofstream(path) << written;
  EXPECT_EQ(format_training_options(Command().parse({"--config", path})), format_training_options(o)) << written;
  fs::remove(path);
}

}  // namespace
