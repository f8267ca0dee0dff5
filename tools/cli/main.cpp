#include <spdlog/spdlog.h>

#include <iostream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"

namespace {

// Exit codes a script can tell apart.
constexpr int kExitModel = 3;    // malformed model, unsupported operator
constexpr int kExitData = 2;     // input data that does not fit the model
constexpr int kExitRuntime = 1;  // backend or I/O failure

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"onnxtrain: train and run ONNX models on the CPU"};
  app.require_subcommand(1);
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
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  spdlog::set_pattern("%^[%l]%$ %v");
  spdlog::set_level(quiet ? spdlog::level::err
                          : verbosity >= 2 ? spdlog::level::debug
                          : verbosity == 1 ? spdlog::level::info
                                           : spdlog::level::warn);
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
