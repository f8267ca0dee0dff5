// DetectionDataset: decodes a record's image, letterboxes (or mosaics and augments) it and
// stacks samples into the batch format of include/onnxtrain/detection.h.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "onnxtrain/detection.h"
#include "src/data_internal.h"
#include "src/detect_internal.h"

namespace onnxtrain {
namespace {

// Uniform in [lo, hi) from 53 random bits.
double uniform(data::Rng& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
}

// Resized keeping the aspect ratio to fit height x width, without padding (a mosaic tile).
LabelledImage fit(const LabelledImage& in, int height, int width) {
  const double r = std::min(static_cast<double>(height) / in.image.height, static_cast<double>(width) / in.image.width);
  return resize(in, std::max(1, static_cast<int>(std::lround(in.image.height * r))),
                std::max(1, static_cast<int>(std::lround(in.image.width * r))));
}

}  // namespace

std::string DetectionSummary::text() const {
  return std::to_string(images) + " images, " + std::to_string(boxes) + " boxes, " + std::to_string(background) +
         " background, " + std::to_string(crowd) + " crowd";
}

void detect::Problems::throw_if_any() const {
  if (items_.empty()) return;
  std::string message = source_ + ": " + std::to_string(items_.size()) + " problem" + (items_.size() == 1 ? "" : "s");
  if (items_.size() > kShown) message += " (the first " + std::to_string(kShown) + ")";
  for (size_t i = 0; i < std::min(items_.size(), kShown); ++i) message += "\n  " + items_[i];
  throw DataError(message);
}

DetectionDataset::DetectionDataset(std::vector<DetectionRecord> records, std::vector<std::string> class_names,
                                   DetectionSummary summary, std::string source, DetectionOptions options)
    : records_(std::move(records)),
      names_(std::move(class_names)),
      summary_(summary),
      source_(std::move(source)),
      options_(std::move(options)) {
  if (options_.height <= 0 || options_.width <= 0)
    throw DataError(source_ + ": the detection input size must be positive, not " + std::to_string(options_.width) +
                    "x" + std::to_string(options_.height));
  if (records_.empty()) throw DataError(source_ + " holds no images");
  const auto& o = options_;
  if (o.images.empty() || o.boxes.empty() || o.counts.empty() || o.images == o.boxes || o.images == o.counts ||
      o.boxes == o.counts)
    throw DataError(source_ + ": the images, boxes and counts arrays need three different, non-empty names");
  // The box count varies per batch; -1 marks that dim in the schema.
  schema_ = {{o.images, DType::Float, {3, o.height, o.width}}, {o.boxes, DType::Float, {-1, 6}}, {o.counts, DType::Int64, {}}};
  std::sort(schema_.begin(), schema_.end(), [](const ArrayInfo& a, const ArrayInfo& b) { return a.name < b.name; });
}

LabelledImage DetectionDataset::load(int64_t index) const {
  const DetectionRecord& r = records_[index];
  LabelledImage out{read_image(r.image), r.boxes};
  if (out.image.width != r.width || out.image.height != r.height)
    throw DataError(data::quoted(r.image) + " is " + std::to_string(out.image.width) + "x" +
                    std::to_string(out.image.height) + ", not " + std::to_string(r.width) + "x" +
                    std::to_string(r.height) + " as when the dataset was opened (did it change?)");
  return out;
}

Image read_image(const std::string& path) {
  const data::DecodedImage decoded = data::decode_image(path, 3);
  Image image(decoded.height, decoded.width);
  const size_t plane = static_cast<size_t>(decoded.width) * decoded.height;
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < 3; ++c) image.pixels[c * plane + i] = decoded.pixels[i * 3 + c] / 255.0f;
  return image;
}

LabelledImage DetectionDataset::sample(int64_t index, const BatchOptions& batch, LetterboxInfo* info) const {
  const int h = options_.height, w = options_.width;
  if (!batch.augment) return letterbox(load(index), h, w, info);
  // The randomness of one sample: a function of (seed, epoch, sample) alone.
  constexpr uint64_t kDomain = 0x646574656374ull;  // "detect"
  data::Rng rng(data::combine(data::combine(data::combine(batch.seed, kDomain), static_cast<uint64_t>(batch.epoch)),
                              static_cast<uint64_t>(index)));
  const auto& o = options_;
  const bool mosaic_epoch = o.mosaic_epochs < 0 || batch.epoch < o.mosaic_epochs;
  LabelledImage s;
  if (mosaic_epoch && o.mosaic > 0 && uniform(rng, 0, 1) < o.mosaic) {
    // Ultralytics' mosaic: four tiles on a 2h x 2w canvas around a random centre in its
    // middle half; the affine below takes the central h x w of it.
    std::array<LabelledImage, 4> tiles;
    tiles[0] = fit(load(index), h, w);
    for (int k = 1; k < 4; ++k) tiles[k] = fit(load(static_cast<int64_t>(rng.below(records_.size()))), h, w);
    const double cx = uniform(rng, w / 2.0, 1.5 * w), cy = uniform(rng, h / 2.0, 1.5 * h);
    s = mosaic(tiles, 2 * h, 2 * w, cx, cy);
  } else {
    s = letterbox(load(index), h, w);
  }
  const AffineParams params{uniform(rng, -o.degrees, o.degrees), uniform(rng, 1 - o.scale, 1 + o.scale),
                            uniform(rng, -o.translate, o.translate), uniform(rng, -o.translate, o.translate)};
  s = affine(s, params, h, w);
  if (o.hsv_h > 0 || o.hsv_s > 0 || o.hsv_v > 0)
    s = hsv_jitter(s, 1 + uniform(rng, -1, 1) * o.hsv_h, 1 + uniform(rng, -1, 1) * o.hsv_s,
                   1 + uniform(rng, -1, 1) * o.hsv_v);
  if (uniform(rng, 0, 1) < o.fliplr) s = hflip(s);
  return s;
}

std::map<std::string, Tensor> DetectionDataset::read(std::span<const int64_t> indices,
                                                     const std::vector<std::string>& names,
                                                     const BatchOptions& batch) const {
  const auto n = static_cast<int64_t>(indices.size());
  const int h = options_.height, w = options_.width;
  std::vector<LabelledImage> samples;
  samples.reserve(indices.size());
  size_t most = 1;  // at least one row, so the tensor is never empty
  for (int64_t index : indices) {
    samples.push_back(sample(index, batch));
    most = std::max(most, samples.back().boxes.size());
  }
  std::map<std::string, Tensor> out;
  for (const auto& name : names) {
    if (name == options_.images) {
      Tensor images(DType::Float, {n, 3, h, w});
      for (int64_t i = 0; i < n; ++i)
        std::memcpy(images.data<float>() + i * 3 * h * w, samples[i].image.pixels.data(), sizeof(float) * 3 * h * w);
      out.emplace(name, std::move(images));
    } else if (name == options_.boxes) {
      Tensor boxes(DType::Float, {n, static_cast<int64_t>(most), 6});
      std::fill_n(boxes.data<float>(), boxes.numel(), 0.0f);
      for (int64_t i = 0; i < n; ++i)
        for (size_t j = 0; j < samples[i].boxes.size(); ++j) {
          const Box& b = samples[i].boxes[j];
          float* row = boxes.data<float>() + (i * static_cast<int64_t>(most) + static_cast<int64_t>(j)) * 6;
          row[0] = 1;
          row[1] = static_cast<float>(b.cls);
          row[2] = (b.x1 + b.x2) / 2 / w, row[3] = (b.y1 + b.y2) / 2 / h;
          row[4] = b.width() / w, row[5] = b.height() / h;
        }
      out.emplace(name, std::move(boxes));
    } else {
      Tensor counts(DType::Int64, {n});
      for (int64_t i = 0; i < n; ++i) counts.data<int64_t>()[i] = static_cast<int64_t>(samples[i].boxes.size());
      out.emplace(name, std::move(counts));
    }
  }
  return out;
}

}  // namespace onnxtrain
