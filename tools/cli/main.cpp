#include <iostream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/verb_config.h"

namespace {

// Exit codes a script can tell apart.
constexpr int kExitModel = 3;    // malformed model, unsupported operator
constexpr int kExitData = 2;     // input data that does not fit the model
constexpr int kExitRuntime = 1;  // backend or I/O failure

bool g_quiet = false;
std::vector<std::string> g_args;

// Quotes an argument for a POSIX shell when it needs it.
std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

bool onnxtrain::cli::quiet_mode() { return g_quiet; }

std::string onnxtrain::cli::command_line_for_resume() {
  std::string out;
  for (size_t i = 0; i < g_args.size(); ++i) {
    if (g_args[i] == "--resume") {
      ++i;
      continue;
    }
    if (g_args[i].rfind("--resume=", 0) == 0) continue;
    out += (out.empty() ? "" : " ") + shell_quote(g_args[i]);
  }
  return out;
}

int main(int argc, char** argv) {
  g_args.assign(argv, argv + argc);
  CLI::App app{"onnxtrain: train and run ONNX models on the CPU"};
  app.require_subcommand(1);
  app.fallthrough();  // -q/-v/--config also after the verb
  app.set_config("--config", "", "Read the verb's options from a TOML file (keys = long option names, e.g. lr = 0.01)");
  app.config_formatter(std::make_shared<onnxtrain::cli::VerbConfig>(app));
  int verbosity = 0;
  bool quiet = false;
  app.add_flag("-v,--verbose", verbosity, "More log output (-vv for debug)");
  app.add_flag("-q,--quiet", quiet, "Only errors");

  const std::vector<onnxtrain::cli::Command> commands = {
      onnxtrain::cli::add_info_command(app),
      onnxtrain::cli::add_run_command(app),
      onnxtrain::cli::add_ops_command(app),
      onnxtrain::cli::add_train_command(app),
      onnxtrain::cli::add_eval_command(app),
      onnxtrain::cli::add_export_command(app),
      onnxtrain::cli::add_artifacts_command(app),
      onnxtrain::cli::add_bench_command(app),
      onnxtrain::cli::add_predict_command(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  g_quiet = quiet;
  using onnxtrain::LogLevel;
  onnxtrain::set_log_level(quiet ? LogLevel::Error
                           : verbosity >= 2 ? LogLevel::Debug
                           : verbosity == 1 ? LogLevel::Info
                                            : LogLevel::Warning);
  try {
    for (const auto& command : commands)
      if (command.app->parsed()) return command.action();
  } catch (const onnxtrain::ModelError& e) {
    std::cerr << "onnxtrain: error: " << e.what() << "\n";
    return kExitModel;
  } catch (const onnxtrain::UnsupportedOp& e) {
    std::cerr << "onnxtrain: error: " << e.what() << "\n";
    return kExitModel;
  } catch (const onnxtrain::DataError& e) {
    std::cerr << "onnxtrain: error: " << e.what() << "\n";
    return kExitData;
  } catch (const onnxtrain::ShapeError& e) {
    std::cerr << "onnxtrain: error: " << e.what() << "\n";
    return kExitData;
  } catch (const std::exception& e) {
    std::cerr << "onnxtrain: error: " << e.what() << "\n";
    return kExitRuntime;
  }
  return 0;
}
