// An application that carries its own model: a small MLP written as ONNX text in the
// source, trained on points generated in memory (fed as zero-copy Tensor views of the
// application's buffers), evaluated and saved as a standard ONNX file.
//
//   embedded_mlp OUT.onnx
#include <onnxtrain/onnxtrain.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <random>
#include <span>
#include <vector>

namespace {

// Two features -> 8 ReLU units -> 3 class logits. The initial weights are part of the text.
constexpr const char* kMlp = R"(
  <ir_version: 8, opset_import: ["" : 17]>
  mlp (float[N, 2] points) => (float[N, 3] logits)
  <float[2, 8] w1 = {-0.52, 0.49, 0.37, -0.35, -0.01, -0.07, 0.21, 0.41,
                     -0.57, -0.67, 0.47, -0.10, 0.37, -0.70, -0.08, 0.31},
   float[8] b1 = {-0.38, 0.63, 0.57, -0.66, -0.67, 0.06, 0.62, -0.17},
   float[8, 3] w2 = {-0.20, -0.06, -0.33, -0.20, -0.04, 0.01, -0.19, -0.19, -0.20, -0.03, -0.15, -0.34,
                     0.24, 0.04, 0.10, -0.22, 0.35, 0.25, -0.27, -0.12, 0.16, 0.15, 0.31, -0.06},
   float[3] b2 = {0.23, 0.12, -0.14}>
  {
    h = MatMul(points, w1)
    hb = Add(h, b1)
    a = Relu(hb)
    z = MatMul(a, w2)
    logits = Add(z, b2)
  }
)";

// Three Gaussian blobs around the corners of a triangle; class = blob.
void make_points(int n, std::vector<float>& points, std::vector<int64_t>& labels) {
  std::mt19937 rng(42);
  std::normal_distribution<float> noise(0.f, 0.6f);
  points.resize(2 * n);
  labels.resize(n);
  for (int i = 0; i < n; ++i) {
    labels[i] = i % 3;
    const float angle = 2.0944f * static_cast<float>(labels[i]);
    points[2 * i] = 2 * std::cos(angle) + noise(rng);
    points[2 * i + 1] = 2 * std::sin(angle) + noise(rng);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUT.onnx\n", argv[0]);
    return 2;
  }
  std::printf("onnxtrain %s (headers %s)\n", onnxtrain::version(), ONNXTRAIN_VERSION_STRING);
  try {
    onnxtrain::Model model = onnxtrain::Model::from_text(kMlp);

    constexpr int kSamples = 384, kBatch = 32;
    std::vector<float> points;
    std::vector<int64_t> labels;
    make_points(kSamples, points, labels);

    onnxtrain::TrainingOptions options;
    options.loss.kind = "cross_entropy";  // reads "logits", targets fed as "label"
    options.optimizer.kind = "adam";
    options.optimizer.lr = 0.02;
    options.threads = 1;
    onnxtrain::TrainingSession session(model, options);

    // Batch b is a view of rows [b*32, b*32+32) of the application's own arrays: no copies.
    auto batch = [&](int b) -> std::map<std::string, onnxtrain::Tensor> {
      return {{"points", onnxtrain::Tensor::view(std::span(points).subspan(2 * kBatch * b, 2 * kBatch), {kBatch, 2})},
              {"label", onnxtrain::Tensor::view(std::span(labels).subspan(kBatch * b, kBatch), {kBatch})}};
    };
    const int batches = kSamples / kBatch;
    double first_loss = 0, last_loss = 0;
    for (int epoch = 0; epoch < 10; ++epoch) {
      double sum = 0;
      for (int b = 0; b < batches; ++b) sum += session.train_step(batch(b)).loss;
      if (epoch == 0) first_loss = sum / batches;
      last_loss = sum / batches;
    }
    std::printf("mean loss: epoch 1 %.4f, epoch 10 %.4f (%lld steps)\n", first_loss, last_loss,
                static_cast<long long>(session.step()));

    auto all = std::map<std::string, onnxtrain::Tensor>{
        {"points", onnxtrain::Tensor::view(std::span(points), {kSamples, 2})},
        {"label", onnxtrain::Tensor::view(std::span(labels), {kSamples})}};
    onnxtrain::EvalResult eval = session.eval_step(all, {"logits"});
    const float* logits = eval.outputs.at("logits").data<float>();
    int correct = 0;
    for (int i = 0; i < kSamples; ++i) {
      const float* row = logits + 3 * i;
      const int64_t guess = std::max_element(row, row + 3) - row;
      correct += guess == labels[i];
    }
    const double accuracy = static_cast<double>(correct) / kSamples;
    std::printf("accuracy %.3f\n", accuracy);

    session.export_inference_model(argv[1]);
    std::printf("saved %s\n", argv[1]);
    if (!(last_loss < first_loss) || accuracy < 0.9) {
      std::fprintf(stderr, "training did not converge\n");
      return 1;
    }
  } catch (const onnxtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
