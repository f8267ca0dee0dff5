// Fine-tunes an ONNX classifier with the public C++ API: load, train a few epochs on an
// .npz file, checkpoint, export the trained model.
//
//   train_digits models/digits/digits_cnn_eval.onnx models/digits/train.npz trained.onnx
#include <onnxtrain/onnxtrain.h>

#include <cstdio>
#include <cstring>

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s MODEL.onnx TRAIN.npz OUT.onnx\n", argv[0]);
    return 2;
  }
  try {
    onnxtrain::Model model = onnxtrain::Model::load(argv[1]);
    auto data = onnxtrain::read_npz(argv[2]);  // arrays "input" [N,1,8,8] and "label" [N]
    const onnxtrain::Tensor& x = data.at("input");
    const onnxtrain::Tensor& y = data.at("label");

    onnxtrain::TrainingOptions options;
    options.loss.kind = "cross_entropy";
    options.optimizer.kind = "adamw";
    options.optimizer.lr = 3e-3;
    options.optimizer.weight_decay = 1e-4;
    options.schedule = onnxtrain::parse_schedule("cosine");
    const int64_t batch = 32, n = x.dim(0), epochs = 5;
    options.total_steps = epochs * (n / batch);
    onnxtrain::TrainingSession session(model, options);

    // Batches as Tensor views over the arrays (no copies): rows [i, i + batch).
    const size_t x_row = x.nbytes() / n, y_row = y.nbytes() / n;
    for (int64_t epoch = 0; epoch < epochs; ++epoch) {
      double loss = 0;
      for (int64_t i = 0; i + batch <= n; i += batch) {
        onnxtrain::Shape xs = x.shape(), ys = y.shape();
        xs[0] = ys[0] = batch;
        auto* xp = static_cast<char*>(const_cast<void*>(x.raw())) + i * x_row;
        auto* yp = static_cast<char*>(const_cast<void*>(y.raw())) + i * y_row;
        loss += session.train_step({{"input", onnxtrain::Tensor::view(x.dtype(), xs, xp)},
                                    {"label", onnxtrain::Tensor::view(y.dtype(), ys, yp)}})
                    .loss;
      }
      std::printf("epoch %lld: mean loss %.4f\n", static_cast<long long>(epoch + 1), loss / (n / batch));
    }
    session.save_checkpoint(std::string(argv[3]) + ".ckpt.npz");
    model.save(argv[3]);  // the original file with the trained weights
  } catch (const onnxtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
