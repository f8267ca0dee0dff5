// Detector: a trained detection model on images of any size (onnxtrain predict --task detect).
#include <algorithm>

#include "onnxtrain/detection_training.h"
#include "onnxtrain/errors.h"

namespace onnxtrain {

struct Detector::Impl {
  InferenceSession session;
  DetectionHead head;
  NmsOptions nms;
  std::string input;
};

Detector::Detector(const Model& model, DetectionHead head, NmsOptions nms, int threads) {
  const auto inputs = model.inputs();
  if (inputs.empty()) throw ModelError("detector: the model has no input");
  // Exported training models run with evaluation semantics (running BatchNorm statistics).
  impl_ = std::make_unique<Impl>(Impl{InferenceSession(model, SessionOptions{.threads = threads, .inference_mode = true}),
                                      std::move(head), nms, inputs.front().name});
}

Detector::~Detector() = default;
Detector::Detector(Detector&&) noexcept = default;
Detector& Detector::operator=(Detector&&) noexcept = default;

const DetectionHead& Detector::head() const { return impl_->head; }

std::vector<Detection> Detector::detect(const Image& image) {
  const int h = static_cast<int>(impl_->head.input_height), w = static_cast<int>(impl_->head.input_width);
  LetterboxInfo info;
  const LabelledImage boxed = letterbox(LabelledImage{image, {}}, h, w, &info);
  Tensor input = Tensor::from_vector<float>({1, 3, h, w}, boxed.image.pixels);
  auto outputs = impl_->session.run({{impl_->input, input}}, impl_->head.outputs);
  std::vector<Tensor> levels;
  for (const auto& name : impl_->head.outputs) levels.push_back(outputs.at(name));
  std::vector<Detection> kept = nms(decode_detections(impl_->head, levels, impl_->nms.confidence).at(0), impl_->nms);
  for (auto& d : kept) {
    Box b = d.box;  // normalised to the input: to its pixels, then to the image's
    b.x1 *= static_cast<float>(w), b.x2 *= static_cast<float>(w), b.y1 *= static_cast<float>(h), b.y2 *= static_cast<float>(h);
    b = info.to_original(b);
    b.x1 = std::clamp(b.x1, 0.0f, static_cast<float>(image.width));
    b.x2 = std::clamp(b.x2, 0.0f, static_cast<float>(image.width));
    b.y1 = std::clamp(b.y1, 0.0f, static_cast<float>(image.height));
    b.y2 = std::clamp(b.y2, 0.0f, static_cast<float>(image.height));
    d.box = b;
    d.image = 0;
  }
  return kept;
}

}  // namespace onnxtrain
