// SegmentationDataset: pairs images with masks by relative path and stem, validates every
// pair before training (one DataError for all problems), and serves resized, augmented
// samples in the batch format of include/onnxtrain/segmentation.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <unordered_map>

#include "onnxtrain/segmentation.h"
#include "src/data_internal.h"
#include "src/detect_internal.h"

namespace onnxtrain {
namespace {

namespace fs = std::filesystem;

// Uniform in [lo, hi) from 53 random bits.
double uniform(data::Rng& rng, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(rng.next() >> 11) * 0x1.0p-53;
}

// Image files under `dir` by relative path without extension ("a/x" for a/x.png); hidden
// files and folders are skipped. Two files sharing a key are a problem.
std::map<std::string, std::string> files_by_stem(const std::string& dir, const char* what, detect::Problems& problems) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw DataError("the " + std::string(what) + " folder " + data::quoted(dir) + " does not exist");
  std::map<std::string, std::string> out;
  fs::recursive_directory_iterator it(dir, ec), end;
  if (ec) throw DataError("cannot read the directory " + data::quoted(dir) + ": " + ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw DataError("cannot read the directory " + data::quoted(dir) + ": " + ec.message());
    const fs::path& p = it->path();
    if (p.filename().string().starts_with(".")) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (!it->is_regular_file(ec) || !data::image_extension(p.string())) continue;
    const std::string key = fs::relative(p, dir).replace_extension().generic_string();
    auto [at, fresh] = out.emplace(key, p.string());
    if (!fresh) problems.add(p.string(), std::string("has the same stem as ") + at->second + " (one " + what + " per name)");
  }
  return out;
}

std::string pixel(int x, int y) { return "pixel (x=" + std::to_string(x) + ", y=" + std::to_string(y) + ")"; }

std::string rgb_text(const unsigned char* p) {
  // snprintf rather than string concatenation, which GCC 12 flags with a false -Wstringop-overflow.
  char text[16];
  std::snprintf(text, sizeof text, "(%u, %u, %u)", unsigned{p[0]}, unsigned{p[1]}, unsigned{p[2]});
  return text;
}

uint32_t pack(const unsigned char* p) { return (uint32_t{p[0]} << 16) | (uint32_t{p[1]} << 8) | p[2]; }

// The class ids of a decoded mask; `problem` gets the first bad pixel and how many there
// are (empty when every pixel is a class or ignored).
Mask mask_ids(const data::DecodedImage& d, const SegmentationOptions& o, std::string& problem) {
  Mask m(d.height, d.width, o.ignore_index);
  std::unordered_map<uint32_t, int64_t> colors;
  for (size_t c = 0; c < o.palette.colors.size(); ++c) colors.emplace(pack(o.palette.colors[c].data()), static_cast<int64_t>(c));
  const int64_t classes = o.num_classes > 0 ? o.num_classes : static_cast<int64_t>(o.palette.colors.size());
  int64_t bad = 0;
  for (int y = 0; y < d.height; ++y)
    for (int x = 0; x < d.width; ++x) {
      const unsigned char* p = &d.pixels[(static_cast<size_t>(y) * d.width + x) * 3];
      std::string why;
      if (!o.palette.colors.empty()) {
        if (o.palette.ignore && pack(o.palette.ignore->data()) == pack(p)) continue;
        auto hit = colors.find(pack(p));
        if (hit == colors.end()) why = "has colour " + rgb_text(p) + ", which is not in the palette";
        else if (classes > 0 && hit->second >= classes)
          why = "has the colour of class " + std::to_string(hit->second) + ", outside [0, " + std::to_string(classes) + ")";
        else m.at(y, x) = hit->second;
      } else if (p[0] != p[1] || p[1] != p[2]) {
        why = "has colour " + rgb_text(p) + "; class-id masks are grey (give a palette for colour masks)";
      } else if (p[0] != o.ignore_index) {
        if (classes > 0 && p[0] >= classes)
          why = "has class " + std::to_string(p[0]) + ", outside [0, " + std::to_string(classes) +
                ") and not the ignore value " + std::to_string(o.ignore_index);
        else m.at(y, x) = p[0];
      }
      if (!why.empty() && bad++ == 0) problem = pixel(x, y) + " " + why;
    }
  if (bad > 1) problem += " (" + std::to_string(bad) + " such pixels)";
  return m;
}

}  // namespace

SegmentationDataset::SegmentationDataset(std::vector<SegmentationRecord> records, std::string source,
                                         SegmentationOptions options)
    : records_(std::move(records)), source_(std::move(source)), options_(std::move(options)) {
  const auto& o = options_;
  if (o.height <= 0 || o.width <= 0)
    throw DataError(source_ + ": the segmentation input size must be positive, not " + std::to_string(o.width) + "x" +
                    std::to_string(o.height));
  if (records_.empty()) throw DataError(source_ + " holds no images");
  if (o.images.empty() || o.mask.empty() || o.images == o.mask)
    throw DataError(source_ + ": the images and mask arrays need two different, non-empty names");
  if (!(o.scale_min > 0 && o.scale_min <= o.scale_max))
    throw DataError(source_ + ": the augmentation scale range [" + std::to_string(o.scale_min) + ", " +
                    std::to_string(o.scale_max) + "] must be positive and ordered");
  schema_ = {{o.images, DType::Float, {3, o.height, o.width}}, {o.mask, DType::Int64, {o.height, o.width}}};
  std::sort(schema_.begin(), schema_.end(), [](const ArrayInfo& a, const ArrayInfo& b) { return a.name < b.name; });
}

SegmentedImage SegmentationDataset::load(int64_t index) const {
  const SegmentationRecord& r = records_[index];
  const data::DecodedImage image = data::decode_image(r.image, 3), mask = data::decode_image(r.mask, 3);
  for (const auto* d : {&image, &mask})
    if (d->width != r.width || d->height != r.height)
      throw DataError(data::quoted(d == &image ? r.image : r.mask) + " is " + std::to_string(d->width) + "x" +
                      std::to_string(d->height) + ", not " + std::to_string(r.width) + "x" + std::to_string(r.height) +
                      " as when the dataset was opened (did it change?)");
  std::string problem;
  SegmentedImage out{Image(r.height, r.width), mask_ids(mask, options_, problem)};
  if (!problem.empty()) throw DataError(data::quoted(r.mask) + ": " + problem + " (did it change since it was opened?)");
  const size_t plane = static_cast<size_t>(r.width) * r.height;
  for (size_t i = 0; i < plane; ++i)
    for (size_t c = 0; c < 3; ++c) out.image.pixels[c * plane + i] = image.pixels[i * 3 + c] / 255.0f;
  return out;
}

SegmentedImage SegmentationDataset::sample(int64_t index, const BatchOptions& batch) const {
  const auto& o = options_;
  const int h = o.height, w = o.width;
  SegmentedImage s = o.letterbox ? letterbox(load(index), h, w, o.ignore_index) : resize(load(index), h, w);
  if (!batch.augment) return s;
  // The randomness of one sample: a function of (seed, epoch, sample) alone.
  constexpr uint64_t kDomain = 0x7365676d656e74ull;  // "segment"
  data::Rng rng(data::combine(data::combine(data::combine(batch.seed, kDomain), static_cast<uint64_t>(batch.epoch)),
                              static_cast<uint64_t>(index)));
  const double scale = uniform(rng, o.scale_min, o.scale_max);
  const int sw = std::max(1, static_cast<int>(std::lround(w * scale)));
  const int sh = std::max(1, static_cast<int>(std::lround(h * scale)));
  // A larger scaled image is cropped at a random place; a smaller one lands at a random
  // place of the padded window.
  auto offset = [&](int scaled, int size) {
    const auto span = static_cast<uint64_t>(std::abs(scaled - size)) + 1;
    const int r = static_cast<int>(rng.below(span));
    return scaled >= size ? r : -r;
  };
  const int left = offset(sw, w), top = offset(sh, h);
  if (scale != 1.0 || left != 0 || top != 0) s = scale_crop(s, scale, left, top, h, w, o.ignore_index);
  if (o.hsv_h > 0 || o.hsv_s > 0 || o.hsv_v > 0)
    s = hsv_jitter(s, 1 + uniform(rng, -1, 1) * o.hsv_h, 1 + uniform(rng, -1, 1) * o.hsv_s,
                   1 + uniform(rng, -1, 1) * o.hsv_v);
  if (uniform(rng, 0, 1) < o.fliplr) s = hflip(s);
  return s;
}

std::map<std::string, Tensor> SegmentationDataset::read(std::span<const int64_t> indices,
                                                        const std::vector<std::string>& names,
                                                        const BatchOptions& batch) const {
  const auto n = static_cast<int64_t>(indices.size());
  const int h = options_.height, w = options_.width;
  const size_t plane = static_cast<size_t>(h) * w;
  Tensor images(DType::Float, {n, 3, h, w}), masks(DType::Int64, {n, h, w});
  for (int64_t i = 0; i < n; ++i) {
    const SegmentedImage s = sample(indices[static_cast<size_t>(i)], batch);
    std::memcpy(images.data<float>() + i * 3 * plane, s.image.pixels.data(), sizeof(float) * 3 * plane);
    std::memcpy(masks.data<int64_t>() + i * plane, s.mask.ids.data(), sizeof(int64_t) * plane);
  }
  std::map<std::string, Tensor> out;
  for (const auto& name : names) out.emplace(name, name == options_.images ? images : masks);
  return out;
}

SegmentationDatasetPtr open_segmentation(const std::string& images_dir, const std::string& masks_dir,
                                         const SegmentationOptions& options) {
  const std::string source = images_dir + " + " + masks_dir;
  detect::Problems problems(source);
  const auto images = files_by_stem(images_dir, "image", problems);
  const auto masks = files_by_stem(masks_dir, "mask", problems);
  for (const auto& [stem, mask] : masks)
    if (!images.count(stem)) problems.add(mask, "a mask without an image (no " + stem + ".* in " + images_dir + ")");
  std::vector<SegmentationRecord> records;
  for (const auto& [stem, image] : images) {
    auto m = masks.find(stem);
    if (m == masks.end()) {
      problems.add(image, "an image without a mask (no " + stem + ".* in " + masks_dir + ")");
      continue;
    }
    SegmentationRecord r{image, m->second};
    int mw = 0, mh = 0;
    std::string why;
    if (!data::read_image_size(r.image, r.width, r.height, why)) {
      problems.add(r.image, "cannot read the image (" + why + ")");
      continue;
    }
    if (!data::read_image_size(r.mask, mw, mh, why)) {
      problems.add(r.mask, "cannot read the mask (" + why + ")");
      continue;
    }
    if (mw != r.width || mh != r.height) {
      problems.add(r.mask, "the mask is " + std::to_string(mw) + "x" + std::to_string(mh) + " but its image " + r.image +
                               " is " + std::to_string(r.width) + "x" + std::to_string(r.height));
      continue;
    }
    try {
      std::string problem;
      mask_ids(data::decode_image(r.mask, 3), options, problem);
      if (!problem.empty()) {
        problems.add(r.mask, problem);
        continue;
      }
    } catch (const DataError& e) {
      problems.add(r.mask, e.what());
      continue;
    }
    records.push_back(std::move(r));
  }
  problems.throw_if_any();
  return std::make_shared<SegmentationDataset>(std::move(records), source, options);
}

}  // namespace onnxtrain
