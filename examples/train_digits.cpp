// Fine-tunes an ONNX classifier with the public C++ API: load, fit a few epochs on an
// .npz file with validation and a run directory, export the trained model.
//
//   train_digits models/digits/digits_cnn_eval.onnx models/digits/train.npz trained.onnx [VAL.npz]
#include <onnxtrain/onnxtrain.h>

#include <cstdio>

namespace {

// Prints one line per epoch; a Callback overrides only the hooks it needs.
struct PrintEpochs : onnxtrain::Callback {
  void on_epoch_end(const onnxtrain::EpochEndEvent& e) override {
    std::printf("epoch %lld/%lld: train loss %.4f", static_cast<long long>(e.epoch), static_cast<long long>(e.epochs),
                e.train_loss);
    if (e.val_metric) std::printf("  val %s %.4f", e.metric.c_str(), *e.val_metric);
    std::printf("%s\n", e.is_best ? "  (best)" : "");
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::fprintf(stderr, "usage: %s MODEL.onnx TRAIN.npz OUT.onnx [VAL.npz]\n", argv[0]);
    return 2;
  }
  try {
    onnxtrain::Model model = onnxtrain::Model::load(argv[1]);
    // Arrays "input" [N,1,8,8] and "label" [N], checked against the model.
    onnxtrain::DatasetPtr train = onnxtrain::fit_to_model(onnxtrain::open_arrays(argv[2]), model, {});
    onnxtrain::DatasetPtr val = argc == 5 ? onnxtrain::fit_to_model(onnxtrain::open_arrays(argv[4]), model, {}) : nullptr;

    onnxtrain::TrainingOptions options;
    options.loss.kind = "cross_entropy";
    options.optimizer.kind = "adamw";
    options.optimizer.lr = 3e-3;
    options.optimizer.weight_decay = 1e-4;
    options.schedule = onnxtrain::parse_schedule("cosine");  // over the fit's steps

    onnxtrain::FitOptions fit;
    fit.epochs = 5;
    fit.batch_size = 32;
    fit.run_dir = std::string(argv[3]) + ".run";  // metrics.csv, results.svg, best/last.onnx, checkpoint.npz
    onnxtrain::Trainer trainer(model, options, fit, train, val);
    PrintEpochs print;
    trainer.add_callback(print);
    onnxtrain::FitResult result = trainer.fit();
    if (result.status == onnxtrain::FitStatus::Diverged) {
      std::fprintf(stderr, "diverged: %s\n", result.message.c_str());
      return 1;
    }
    model.save(argv[3]);  // the original file with the trained weights
  } catch (const onnxtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
