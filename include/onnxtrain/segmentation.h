#pragma once
// Semantic segmentation: a dataset of images with per-pixel class masks (class-id PNGs or
// colour masks through a palette), the joint transforms that keep a mask aligned with its
// image, and overlays of predicted masks. docs/segmentation.md describes the layout.
//
// Batches of a SegmentationDataset (names configurable in SegmentationOptions):
//   images  float32 [N, 3, H, W]  RGB in [0, 1], resized or letterboxed to H x W
//   mask    int64   [N, H, W]     class ids in [0, C); ignore_index where the mask says
//                                 "ignore" and where transforms padded the image
#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "onnxtrain/data.h"
#include "onnxtrain/detection.h"

namespace onnxtrain {

// ---- Masks and palettes ---------------------------------------------------------------------

// Class ids, row-major: ids[y * width + x].
struct Mask {
  int height = 0, width = 0;
  std::vector<int64_t> ids;

  Mask() = default;
  Mask(int height, int width, int64_t fill = 0);
  int64_t& at(int y, int x) { return ids[static_cast<size_t>(y) * width + x]; }
  int64_t at(int y, int x) const { return ids[static_cast<size_t>(y) * width + x]; }
};

using Rgb = std::array<uint8_t, 3>;

// Colour masks: colors[c] is class c's colour; pixels of `ignore` (when set) are ignored.
struct Palette {
  std::vector<Rgb> colors;
  std::optional<Rgb> ignore;
};
// PASCAL VOC's palette: 21 classes (bit-interleaved colours, background black) and the
// boundary colour (224, 224, 192) as ignore.
Palette voc_palette();
// "voc", or a text file with one class colour a line, "R G B" or "R,G,B" (class id = line
// order; blank lines and lines starting with # skipped); a line "ignore R G B" sets the
// ignore colour. Throws DataError naming the file and line.
Palette read_palette(const std::string& name_or_file);

struct SegmentedImage {
  Image image;
  Mask mask;
};

// ---- Joint transforms (pure functions: the image bilinear, the mask nearest) --------------
// Both sample at pixel centres, so a pixel of the mask takes the class of the source pixel
// that weighs most in the image's pixel: a drawn rectangle stays aligned with its mask
// (tests/unit/segment_transforms_test.cpp).

// Resizes to exactly height x width (the aspect ratio may change).
SegmentedImage resize(const SegmentedImage& in, int height, int width);
// Resizes keeping the aspect ratio to fit height x width, centred; the image is padded
// grey (kPadValue), the mask with `ignore_index`.
SegmentedImage letterbox(const SegmentedImage& in, int height, int width, int64_t ignore_index);
// Scales by `scale`, then takes the height x width window whose top left is (left, top)
// in the scaled image; parts of the window outside it are padded as letterbox pads.
SegmentedImage scale_crop(const SegmentedImage& in, double scale, int left, int top, int height, int width,
                          int64_t ignore_index);
SegmentedImage hflip(const SegmentedImage& in);
// hsv_jitter of the image (see detection.h); the mask is unchanged.
SegmentedImage hsv_jitter(const SegmentedImage& in, double hue_gain, double saturation_gain, double value_gain);

// The image with each pixel's class colour blended in (alpha of the colour; ignored and
// out-of-palette ids left as they are), as interleaved 8-bit RGB.
std::vector<uint8_t> overlay_rgb(const Image& image, const Mask& mask, const Palette& palette, double alpha = 0.5);
// Writes images side by side (each height x width, interleaved RGB) as one PNG.
void write_png_row(const std::string& path, const std::vector<std::vector<uint8_t>>& images, int height, int width);

// ---- Dataset ----------------------------------------------------------------------------------

struct SegmentationOptions {
  int height = 0, width = 0;  // the model's input size: required
  std::string images = "images", mask = "mask";
  // Classes C: ids of a class-id mask must be < C (0 = a palette's size, or unchecked).
  int64_t num_classes = 0;
  // Class-id masks: this value marks ignored pixels. Batches use it for every ignored or
  // padded pixel (the loss's and metrics' ignore_index).
  int64_t ignore_index = 255;
  // Empty colours: masks hold class ids (8-bit grey). Else colour masks mapped through it.
  Palette palette;
  bool letterbox = true;  // keep the aspect ratio (pad); false stretches to height x width
  // Augmentation, only when BatchOptions::augment.
  double scale_min = 0.75, scale_max = 1.25;  // random scale, then a random height x width crop
  double fliplr = 0.5;                        // probability of a horizontal flip
  double hsv_h = 0.015, hsv_s = 0.7, hsv_v = 0.4;  // gains drawn from 1 +- these (image only)
};

struct SegmentationRecord {
  std::string image, mask;
  int width = 0, height = 0;
};

class SegmentationDataset final : public Dataset {
 public:
  SegmentationDataset(std::vector<SegmentationRecord> records, std::string source, SegmentationOptions options);

  int64_t size() const override { return static_cast<int64_t>(records_.size()); }
  const std::vector<ArrayInfo>& arrays() const override { return schema_; }
  const std::string& source() const override { return source_; }

  const std::vector<SegmentationRecord>& records() const { return records_; }
  const SegmentationOptions& options() const { return options_; }
  // The decoded files (original size, mask in class ids with ignore_index).
  SegmentedImage load(int64_t index) const;
  // Sample `index` as a batch holds it: resized or letterboxed, augmented when asked.
  SegmentedImage sample(int64_t index, const BatchOptions& options) const;

 protected:
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                     const BatchOptions& options) const override;

 private:
  std::vector<SegmentationRecord> records_;
  std::string source_;
  SegmentationOptions options_;
  std::vector<ArrayInfo> schema_;
};
using SegmentationDatasetPtr = std::shared_ptr<const SegmentationDataset>;

// Pairs every image under images_dir with the mask of the same relative path and stem
// under masks_dir (images/a/x.jpg <-> masks/a/x.png), then validates every pair before
// training: an image without a mask or a mask without an image, an unreadable file, an
// image and mask of different sizes, a class id >= num_classes (other than ignore_index),
// a colour not in the palette, a colour in a class-id mask. All problems go into one
// DataError (the first 10 and the count) naming the file and pixel.
SegmentationDatasetPtr open_segmentation(const std::string& images_dir, const std::string& masks_dir,
                                         const SegmentationOptions& options);

}  // namespace onnxtrain
