// Inference only: load a trained ONNX file and classify points held in the application's
// own memory (a zero-copy Tensor view). Reads the file embedded_mlp writes.
//
//   inference TRAINED.onnx
#include <onnxtrain/onnxtrain.h>

#include <algorithm>
#include <cstdio>
#include <span>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s TRAINED.onnx\n", argv[0]);
    return 2;
  }
  try {
    onnxtrain::Model model = onnxtrain::Model::load(argv[1]);
    for (const auto& input : model.inputs()) std::printf("input %s %s\n", input.name.c_str(), input.shape_str().c_str());
    onnxtrain::InferenceSession session(model, {.threads = 1, .inference_mode = true});

    // One point at the centre of each class's blob (see embedded_mlp).
    std::vector<float> points = {2.0f, 0.0f, -1.0f, 1.732f, -1.0f, -1.732f};
    auto outputs = session.run({{"points", onnxtrain::Tensor::view(std::span(points), {3, 2})}}, {"logits"});
    const onnxtrain::Tensor& logits = outputs.at("logits");
    int correct = 0;
    for (int i = 0; i < 3; ++i) {
      const float* row = logits.data<float>() + 3 * i;
      const long guess = std::max_element(row, row + 3) - row;
      std::printf("point (%.2f, %.2f) -> class %ld\n", points[2 * i], points[2 * i + 1], guess);
      correct += guess == i;
    }
    if (correct != 3) {
      std::fprintf(stderr, "unexpected predictions\n");
      return 1;
    }
  } catch (const onnxtrain::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
