// `onnxtrain train MODEL --data TRAIN.npz ...`: fine-tune a model on arrays keyed by input
// name plus a label array; `onnxtrain eval MODEL --data FILE.npz`: accuracy of a model.
#include <chrono>
#include <cstdio>
#include <iostream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/dataset.h"

namespace onnxtrain::cli {

namespace {

struct TrainArgs {
  std::string model, data, val, out, label = "label", output, loss = "cross_entropy", optimizer = "adam";
  std::string scheduler = "constant";
  double lr = 1e-3, momentum = 0, weight_decay = 0, clip = 0;
  bool nesterov = false, no_shuffle = false;
  int epochs = 5, threads = 0;
  int64_t batch_size = 32;
  uint64_t seed = 0;
};

std::vector<std::string> input_names(const Model& model) {
  std::vector<std::string> names;
  for (const auto& in : model.inputs()) names.push_back(in.name);
  return names;
}

// Accuracy of `model` on a dataset, in batches, through an inference session.
double accuracy(const Model& model, const Dataset& data, const std::string& label, const std::string& output,
                int threads) {
  InferenceSession session(model, SessionOptions{.threads = threads, .inference_mode = true});
  const std::string out = output.empty() ? model.outputs().at(0).name : output;
  int64_t correct = 0, total = 0;
  for (const auto& idx : data.batches(256, nullptr)) {
    auto batch = data.batch(idx);
    Tensor labels = batch.at(label);
    batch.erase(label);
    auto [c, n] = count_correct(session.run(batch, {out}).at(out), labels);
    correct += c;
    total += n;
  }
  return total ? static_cast<double>(correct) / static_cast<double>(total) : 0.0;
}

int run_train(const TrainArgs& a) {
  set_num_threads(a.threads);
  Model model = Model::load(a.model);
  std::vector<std::string> required = input_names(model);
  required.push_back(a.label);
  Dataset train(read_arrays(a.data), a.data, required);
  std::optional<Dataset> val;
  if (!a.val.empty()) val.emplace(read_arrays(a.val), a.val, required);

  TrainingOptions options;
  options.loss.kind = a.loss;
  options.loss.output = a.output;
  options.loss.target = a.label;
  options.optimizer.kind = a.optimizer;
  options.optimizer.lr = a.lr;
  options.optimizer.momentum = a.momentum;
  options.optimizer.nesterov = a.nesterov;
  options.optimizer.weight_decay = a.weight_decay;
  options.schedule = parse_schedule(a.scheduler);
  options.clip_grad_norm = a.clip;
  options.threads = a.threads;
  options.seed = a.seed;
  const int64_t steps_per_epoch = (train.size() + a.batch_size - 1) / a.batch_size;
  options.total_steps = steps_per_epoch * a.epochs;
  TrainingSession session(model, options);
  std::printf("training %zu parameter tensors (%lld values) on %lld samples, %lld steps per epoch\n",
              session.trainable().size(), static_cast<long long>(session.trainable_elements()),
              static_cast<long long>(train.size()), static_cast<long long>(steps_per_epoch));

  std::mt19937_64 rng(a.seed);
  for (int epoch = 1; epoch <= a.epochs; ++epoch) {
    auto start = std::chrono::steady_clock::now();
    double loss_sum = 0;
    int64_t seen = 0;
    for (const auto& idx : train.batches(a.batch_size, a.no_shuffle ? nullptr : &rng)) {
      StepResult r = session.train_step(train.batch(idx));
      loss_sum += r.loss * static_cast<double>(idx.size());
      seen += static_cast<int64_t>(idx.size());
    }
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("epoch %d/%d  loss %.4f  %.0f samples/s", epoch, a.epochs, loss_sum / static_cast<double>(seen),
                static_cast<double>(seen) / secs);
    if (val && a.loss == "cross_entropy")
      std::printf("  val accuracy %.4f", accuracy(model, *val, a.label, a.output, a.threads));
    std::printf("\n");
    std::fflush(stdout);
  }
  if (!a.out.empty()) {
    model.save_inference(a.out);
    std::printf("wrote %s\n", a.out.c_str());
  }
  return 0;
}

}  // namespace

Command add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "Fine-tune a model on arrays from an .npz file");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("model", a->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "Training arrays (.npz: model inputs by name and the label array)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--val", a->val, "Validation arrays (.npz), evaluated after each epoch")->check(CLI::ExistingFile);
  cmd->add_option("--label", a->label, "Name of the label array (default: label)");
  cmd->add_option("--output", a->output, "Model output the loss reads (default: the first)");
  cmd->add_option("--loss", a->loss, "cross_entropy | nll | mse | l1");
  cmd->add_option("--optimizer", a->optimizer, "sgd | adam | adamw | adagrad | rmsprop");
  cmd->add_option("--lr", a->lr, "Learning rate");
  cmd->add_option("--momentum", a->momentum, "Momentum (sgd, rmsprop)");
  cmd->add_flag("--nesterov", a->nesterov, "Nesterov momentum (sgd)");
  cmd->add_option("--weight-decay", a->weight_decay, "Weight decay");
  cmd->add_option("--scheduler", a->scheduler, "constant | step:N:G | multistep:M1,M2:G | exponential:G | cosine | linear | onecycle");
  cmd->add_option("--clip-grad-norm", a->clip, "Clip the global gradient norm to this value");
  cmd->add_option("--epochs", a->epochs, "Epochs")->check(CLI::PositiveNumber);
  cmd->add_option("--batch-size", a->batch_size, "Batch size")->check(CLI::PositiveNumber);
  cmd->add_flag("--no-shuffle", a->no_shuffle, "Take batches in file order");
  cmd->add_option("--seed", a->seed, "Seed for shuffling and dropout");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  cmd->add_option("--out", a->out, "Write the trained model here");
  return {cmd, [a]() { return run_train(*a); }};
}

Command add_eval_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("eval", "Accuracy of a classifier on arrays from an .npz file");
  auto a = std::make_shared<TrainArgs>();
  cmd->add_option("model", a->model, "ONNX model file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--data", a->data, "Arrays (.npz: model inputs by name and the label array)")
      ->required()->check(CLI::ExistingFile);
  cmd->add_option("--label", a->label, "Name of the label array (default: label)");
  cmd->add_option("--output", a->output, "Model output holding the class scores (default: the first)");
  cmd->add_option("--threads", a->threads, "Threads (default: all cores)");
  return {cmd, [a]() {
    set_num_threads(a->threads);
    Model model = Model::load(a->model);
    std::vector<std::string> required = input_names(model);
    required.push_back(a->label);
    Dataset data(read_arrays(a->data), a->data, required);
    std::printf("accuracy: %.4f\n", accuracy(model, data, a->label, a->output, a->threads));
    return 0;
  }};
}

}  // namespace onnxtrain::cli
