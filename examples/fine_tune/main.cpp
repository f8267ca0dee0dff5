// Fine-tunes an ONNX classifier from a file with the Trainer: validation each epoch, a run
// directory (metrics.csv, best/last model, checkpoint.npz), a stop requested after the
// first epoch (as Ctrl-C would), then a second Trainer resuming from the checkpoint.
//
//   fine_tune MODEL.onnx TRAIN.npz OUT_DIR
#include <onnxtrain/onnxtrain.h>

#include <cstdio>
#include <string>

namespace {

// Prints one line per epoch and asks the trainer to stop after `stop_after` epochs.
struct Epochs : onnxtrain::Callback {
  onnxtrain::Trainer* trainer = nullptr;
  int64_t stop_after = 0;
  void on_epoch_end(const onnxtrain::EpochEndEvent& e) override {
    std::printf("epoch %lld/%lld: train loss %.4f", static_cast<long long>(e.epoch), static_cast<long long>(e.epochs),
                e.train_loss);
    if (e.val_metric) std::printf("  val %s %.4f", e.metric.c_str(), *e.val_metric);
    std::printf("%s\n", e.is_best ? "  (best)" : "");
    if (e.epoch == stop_after) trainer->request_stop();
  }
};

onnxtrain::TrainingOptions training_options() {
  onnxtrain::TrainingOptions options;
  options.loss.kind = "cross_entropy";
  options.optimizer.kind = "adamw";
  options.optimizer.lr = 3e-3;
  options.optimizer.weight_decay = 1e-4;
  options.schedule = onnxtrain::parse_schedule("cosine");  // over the fit's steps
  options.threads = 1;
  return options;
}

// One fit: `resume` empty starts fresh and stops after the first epoch.
onnxtrain::FitResult run(const std::string& model_path, const std::string& train_path, const std::string& out_dir,
                         const std::string& resume) {
  onnxtrain::Model model = onnxtrain::Model::load(model_path);
  // Arrays "input" [N,1,8,8] and "label" [N], checked against the model; 20% for validation.
  auto data = onnxtrain::fit_to_model(onnxtrain::open_arrays(train_path), model, {});
  onnxtrain::Split parts = onnxtrain::split(data, 0.2, /*seed=*/0);

  onnxtrain::FitOptions fit;
  fit.epochs = 3;
  fit.batch_size = 64;
  fit.run_dir = out_dir;
  fit.model_path = model_path;
  fit.resume = resume;
  onnxtrain::Trainer trainer(model, training_options(), fit, parts.train, parts.val);
  Epochs epochs;
  epochs.trainer = &trainer;
  epochs.stop_after = resume.empty() ? 1 : 0;
  trainer.add_callback(epochs);
  return trainer.fit();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx TRAIN.npz OUT_DIR\n", argv[0]);
    return 2;
  }
  try {
    onnxtrain::FitResult first = run(argv[1], argv[2], argv[3], "");
    if (first.status != onnxtrain::FitStatus::Interrupted) {
      std::fprintf(stderr, "expected the first fit to stop after one epoch\n");
      return 1;
    }
    std::printf("stopped at step %lld, checkpoint %s\n", static_cast<long long>(first.steps),
                first.checkpoint.string().c_str());

    onnxtrain::FitResult second = run(argv[1], argv[2], argv[3], first.checkpoint.string());
    if (second.status != onnxtrain::FitStatus::Completed) {
      std::fprintf(stderr, "the resumed fit did not complete: %s\n", second.message.c_str());
      return 1;
    }
    std::printf("resumed and completed at step %lld, best val accuracy %.4f, best model %s\n",
                static_cast<long long>(second.steps), second.best, second.best_model.string().c_str());
  } catch (const onnxtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
