// Palettes of colour masks (VOC's, or a text file) and the overlays of predicted masks a
// segmentation run writes (PNG through stb_image_write, compiled static here so a program
// that also embeds it links).
#include <algorithm>
#include <cmath>
#include <fstream>
#include <sstream>

#include "onnxtrain/atomic_file.h"
#include "onnxtrain/segmentation.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
#pragma GCC diagnostic pop

namespace onnxtrain {
namespace {

constexpr int kVocClasses = 21;

// VOC's colour map: the bits of the class index interleaved into R, G and B from the top.
Rgb voc_color(int index) {
  Rgb rgb{0, 0, 0};
  for (int j = 0, c = index; j < 8; ++j, c >>= 3)
    for (int k = 0; k < 3; ++k) rgb[k] = static_cast<uint8_t>(rgb[k] | (((c >> k) & 1) << (7 - j)));
  return rgb;
}

}  // namespace

Palette voc_palette() {
  Palette p;
  for (int i = 0; i < kVocClasses; ++i) p.colors.push_back(voc_color(i));
  p.ignore = voc_color(255);  // (224, 224, 192): VOC's object boundaries
  return p;
}

Palette read_palette(const std::string& name_or_file) {
  if (name_or_file == "voc") return voc_palette();
  std::ifstream in(name_or_file);
  if (!in) throw DataError("cannot open the palette file '" + name_or_file + "' (or give 'voc')");
  Palette p;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    std::replace(line.begin(), line.end(), ',', ' ');
    std::istringstream words(line);
    std::string first;
    if (!(words >> first) || first.starts_with("#")) continue;
    const bool ignore = first == "ignore";
    if (!ignore) words.seekg(0);
    int rgb[3];
    std::string rest;
    if (!(words >> rgb[0] >> rgb[1] >> rgb[2]) || (words >> rest) ||
        std::any_of(rgb, rgb + 3, [](int v) { return v < 0 || v > 255; }))
      throw DataError(name_or_file + ":" + std::to_string(number) + ": expected 'R G B' (0-255) or 'ignore R G B', got '" +
                      line + "'");
    const Rgb color{static_cast<uint8_t>(rgb[0]), static_cast<uint8_t>(rgb[1]), static_cast<uint8_t>(rgb[2])};
    if (std::find(p.colors.begin(), p.colors.end(), color) != p.colors.end() || (p.ignore && *p.ignore == color))
      throw DataError(name_or_file + ":" + std::to_string(number) + ": the colour is listed twice");
    if (ignore) p.ignore = color;
    else p.colors.push_back(color);
  }
  if (p.colors.empty()) throw DataError(name_or_file + ": the palette lists no class colour");
  return p;
}

std::vector<uint8_t> overlay_rgb(const Image& image, const Mask& mask, const Palette& palette, double alpha) {
  if (image.height != mask.height || image.width != mask.width)
    throw DataError("overlay: the image is " + std::to_string(image.width) + "x" + std::to_string(image.height) +
                    " but the mask " + std::to_string(mask.width) + "x" + std::to_string(mask.height));
  std::vector<uint8_t> out(static_cast<size_t>(image.height) * image.width * 3);
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const int64_t id = mask.at(y, x);
      const bool colored = id >= 0 && id < static_cast<int64_t>(palette.colors.size());
      for (int c = 0; c < 3; ++c) {
        double v = std::clamp(image.at(c, y, x), 0.0f, 1.0f) * 255.0;
        if (colored) v = (1 - alpha) * v + alpha * palette.colors[static_cast<size_t>(id)][c];
        out[(static_cast<size_t>(y) * image.width + x) * 3 + c] = static_cast<uint8_t>(std::lround(v));
      }
    }
  return out;
}

void write_png_row(const std::string& path, const std::vector<std::vector<uint8_t>>& images, int height, int width) {
  const size_t row = static_cast<size_t>(width) * 3, k = images.size();
  std::vector<uint8_t> canvas(row * k * static_cast<size_t>(height));
  for (size_t i = 0; i < k; ++i) {
    if (images[i].size() != row * static_cast<size_t>(height))
      throw DataError("write_png_row: image " + std::to_string(i) + " is not " + std::to_string(width) + "x" +
                      std::to_string(height) + " RGB");
    for (int y = 0; y < height; ++y)
      std::copy_n(&images[i][y * row], row, &canvas[(static_cast<size_t>(y) * k + i) * row]);
  }
  int length = 0;
  unsigned char* png = stbi_write_png_to_mem(canvas.data(), static_cast<int>(row * k), static_cast<int>(width * k),
                                             height, 3, &length);
  if (!png) throw BackendError("cannot encode the PNG " + path);
  const std::string bytes(reinterpret_cast<const char*>(png), static_cast<size_t>(length));
  STBIW_FREE(png);
  write_file_atomically(path, bytes);
}

}  // namespace onnxtrain
