#pragma once
// The onnxtrain command line: each verb registers its options and its action. The CLI is a
// thin client of the public API in include/onnxtrain.
#include <CLI/CLI.hpp>
#include <functional>

namespace onnxtrain::cli {

using Action = std::function<int()>;

// A verb: its parsed subcommand and what to do when it was chosen.
struct Command {
  CLI::App* app;
  Action action;
};

Command add_info_command(CLI::App& app);
Command add_run_command(CLI::App& app);
Command add_ops_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);

}  // namespace onnxtrain::cli
