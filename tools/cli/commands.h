#pragma once
// The onnxtrain command line: each verb registers its options and its action. The CLI is a
// thin client of the public API in include/onnxtrain.
#include <CLI/CLI.hpp>
#include <functional>
#include <string>

namespace onnxtrain::cli {

using Action = std::function<int()>;

// A verb: its parsed subcommand and what to do when it was chosen.
struct Command {
  CLI::App* app;
  Action action;
};

// Global flags, set once the command line is parsed.
bool quiet_mode();
// The command line as typed, without --resume and its value (for "resume with: ..." hints).
std::string command_line_for_resume();

Command add_info_command(CLI::App& app);
Command add_run_command(CLI::App& app);
Command add_ops_command(CLI::App& app);
Command add_train_command(CLI::App& app);
Command add_eval_command(CLI::App& app);
Command add_export_command(CLI::App& app);
Command add_artifacts_command(CLI::App& app);
Command add_bench_command(CLI::App& app);
Command add_predict_command(CLI::App& app);

}  // namespace onnxtrain::cli
