// `onnxtrain export CHECKPOINT --out MODEL.onnx [--training]`: a trained model from a
// training checkpoint. `onnxtrain artifacts MODEL ... --out-dir DIR`: the training model,
// evaluation model and initial checkpoint for training from the C++ API.
#include <filesystem>
#include <iostream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/train_args.h"

namespace onnxtrain::cli {

namespace fs = std::filesystem;

Command add_export_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("export", "Write the model of a training checkpoint as ONNX");
  struct ExportArgs {
    std::string checkpoint, out, model;
    bool training = false;
  };
  auto a = std::make_shared<ExportArgs>();
  cmd->add_option("checkpoint", a->checkpoint, "Checkpoint written by `onnxtrain train` (runs/train/N/checkpoint.npz)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--out", a->out, "Output ONNX file")->required();
  cmd->add_flag("--training", a->training,
                "Write the training model (ONNX TrainingInfoProto with the optimizer state) instead of the inference model");
  cmd->add_option("--model", a->model, "The model the checkpoint belongs to (default: the one recorded in it)");
  return {cmd, [a]() {
    auto arrays = read_npz(a->checkpoint);
    auto note = [&](const std::string& key) -> std::string {
      auto it = arrays.find("note." + key);
      if (it == arrays.end())
        throw DataError(a->checkpoint + " has no '" + key + "' note: it was not written by `onnxtrain train`");
      return std::string(static_cast<const char*>(it->second.raw()), static_cast<size_t>(it->second.numel()));
    };
    const std::string model_path = a->model.empty() ? note("model") : a->model;
    if (!fs::exists(model_path))
      throw DataError("the checkpoint's model " + model_path + " does not exist; name it with --model");
    Model model = Model::load(model_path);
    TrainingSession session(model, parse_training_options(note("options")));
    session.load_checkpoint(a->checkpoint);
    if (a->training) session.export_training_model(a->out);
    else session.export_inference_model(a->out);
    if (!quiet_mode())
      std::cout << "wrote " << (a->training ? "training" : "inference") << " model " << a->out << " (step " << session.step()
                << ")\n";
    return 0;
  }};
}

Command add_artifacts_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("artifacts", "Write training artifacts for the C++ API: training model, eval model, checkpoint");
  struct ArtifactsArgs {
    std::string model, out_dir, label = "label";
    TrainingFlags training;
  };
  auto a = std::make_shared<ArtifactsArgs>();
  cmd->add_option("model", a->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--out-dir", a->out_dir, "Directory for the artifacts")->required();
  cmd->add_option("--label", a->label, "Name of the loss target input (default: label)");
  add_loss_flags(cmd, a->training);
  add_optimizer_flags(cmd, a->training);
  return {cmd, [cmd, a]() {
    Model model = Model::load(a->model);
    TrainingSession session(model, training_options(*cmd, a->training, std::nullopt));
    fs::create_directories(a->out_dir);
    const fs::path dir(a->out_dir);
    session.export_training_model((dir / "training_model.onnx").string());
    session.export_eval_model((dir / "eval_model.onnx").string());
    session.save_checkpoint((dir / "checkpoint.npz").string(),
                            {{"model", fs::absolute(a->model).string()},
                             {"options", format_training_options(training_options(*cmd, a->training, std::nullopt))}});
    if (!quiet_mode())
      std::cout << "wrote " << (dir / "training_model.onnx").string() << " (model + TrainingInfoProto: loss, gradients, "
                << "optimizer update), " << (dir / "eval_model.onnx").string() << " (evaluation graph with the loss), "
                << (dir / "checkpoint.npz").string() << " (initial checkpoint); " << session.trainable().size()
                << " trainable tensors\n";
    return 0;
  }};
}

}  // namespace onnxtrain::cli
