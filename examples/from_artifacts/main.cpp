// Continues training from the artifacts `onnxtrain artifacts` writes: the training model
// (the model with its training algorithm as an ONNX TrainingInfoProto and the options in
// its metadata) and the checkpoint. Trains some steps, then exports the inference model,
// the training model and a checkpoint to continue from later.
//
//   onnxtrain artifacts MODEL.onnx --loss cross_entropy --optimizer adam --out-dir ART
//   from_artifacts ART TRAIN.npz OUT_DIR
#include <onnxtrain/onnxtrain.h>

#include <cstdio>
#include <filesystem>
#include <string>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s ARTIFACTS_DIR TRAIN.npz OUT_DIR\n", argv[0]);
    return 2;
  }
  const std::filesystem::path artifacts = argv[1], out = argv[3];
  try {
    onnxtrain::Model model = onnxtrain::Model::load((artifacts / "training_model.onnx").string());
    // The loss and optimizer the artifacts were made with.
    std::optional<onnxtrain::TrainingOptions> options = onnxtrain::training_options_of(model);
    if (!options) throw onnxtrain::ModelError("training_model.onnx holds no training options");
    options->threads = 1;
    onnxtrain::TrainingSession session(model, *options);
    session.load_checkpoint((artifacts / "checkpoint.npz").string());
    std::printf("loaded: %zu trainable tensors, step %lld, lr %g\n", session.trainable().size(),
                static_cast<long long>(session.step()), session.current_lr());

    auto data = onnxtrain::fit_to_model(onnxtrain::open_arrays(argv[2]), model, options->loss);
    onnxtrain::DataLoader loader(data, {.batch_size = 32, .shuffle = true, .seed = 1});
    double first = 0, last = 0;
    for (int i = 0; i < 40; ++i) {
      onnxtrain::StepResult r = session.train_step(loader.next().arrays);
      if (i == 0) first = r.loss;
      last = r.loss;
    }
    std::printf("loss %.4f -> %.4f after %lld steps\n", first, last, static_cast<long long>(session.step()));

    std::filesystem::create_directories(out);
    session.export_inference_model((out / "model.onnx").string());
    session.export_training_model((out / "training_model.onnx").string());
    session.save_checkpoint((out / "checkpoint.npz").string());
    // The exported training model continues where this session stopped.
    onnxtrain::Model again = onnxtrain::Model::load((out / "training_model.onnx").string());
    std::printf("exported model.onnx, training_model.onnx (step %lld), checkpoint.npz\n",
                static_cast<long long>(onnxtrain::training_step_of(again).value_or(-1)));
    if (!(last < first)) {
      std::fprintf(stderr, "the loss did not decrease\n");
      return 1;
    }
  } catch (const onnxtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
