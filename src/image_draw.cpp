#include "src/image_draw.h"

#include <stb/stb_easy_font.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <vector>

#include "onnxtrain/atomic_file.h"
#include "onnxtrain/errors.h"

// The library writes PNGs itself; STATIC keeps these symbols private, so a program that
// compiles stb_image_write too (our tests do) links without clashes.
#define STB_IMAGE_WRITE_STATIC
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>

namespace onnxtrain {

namespace {

void fill_rect(Image& image, int x0, int y0, int x1, int y1, const Colour& colour) {
  x0 = std::clamp(x0, 0, image.width), x1 = std::clamp(x1, 0, image.width);
  y0 = std::clamp(y0, 0, image.height), y1 = std::clamp(y1, 0, image.height);
  for (int c = 0; c < 3; ++c)
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) image.at(c, y, x) = colour[c];
}

// Black or white, whichever reads better on `background`.
Colour text_colour(const Colour& background) {
  const double luma = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2];
  return luma > 0.55 ? Colour{0, 0, 0} : Colour{1, 1, 1};
}

}  // namespace

Colour class_colour(int64_t cls) {
  // Hues far apart in order, so neighbouring class ids never look alike.
  static const Colour kColours[] = {
      {1.00f, 0.22f, 0.22f}, {0.12f, 0.56f, 1.00f}, {0.20f, 0.80f, 0.20f}, {1.00f, 0.70f, 0.00f},
      {0.62f, 0.32f, 0.90f}, {0.00f, 0.80f, 0.80f}, {1.00f, 0.40f, 0.75f}, {0.55f, 0.75f, 0.10f},
      {0.95f, 0.50f, 0.20f}, {0.30f, 0.30f, 0.95f}, {0.90f, 0.90f, 0.20f}, {0.10f, 0.60f, 0.45f},
      {0.80f, 0.15f, 0.50f}, {0.45f, 0.85f, 1.00f}, {0.70f, 0.45f, 0.25f}, {0.60f, 1.00f, 0.55f},
      {1.00f, 0.65f, 0.65f}, {0.40f, 0.40f, 0.40f}, {0.85f, 0.60f, 1.00f}, {0.00f, 0.45f, 0.70f}};
  constexpr int64_t n = sizeof(kColours) / sizeof(kColours[0]);
  return kColours[((cls % n) + n) % n];
}

void draw_box(Image& image, const Box& box, const Colour& colour, int thickness) {
  if (!(box.x2 > box.x1) || !(box.y2 > box.y1)) return;
  const int x0 = static_cast<int>(std::floor(box.x1)), y0 = static_cast<int>(std::floor(box.y1));
  const int x1 = static_cast<int>(std::ceil(box.x2)), y1 = static_cast<int>(std::ceil(box.y2));
  const int t = std::max(1, std::min({thickness, (x1 - x0 + 1) / 2, (y1 - y0 + 1) / 2}));
  fill_rect(image, x0, y0, x1, y0 + t, colour);
  fill_rect(image, x0, y1 - t, x1, y1, colour);
  fill_rect(image, x0, y0, x0 + t, y1, colour);
  fill_rect(image, x1 - t, y0, x1, y1, colour);
}

void draw_label(Image& image, float x, float y, std::string_view text, const Colour& background, int scale) {
  std::string ascii(text);
  for (char& ch : ascii)
    if (static_cast<unsigned char>(ch) < 32 || static_cast<unsigned char>(ch) > 126) ch = '?';
  scale = std::max(1, scale);
  const int pad = scale;
  const int w = stb_easy_font_width(ascii.data()) * scale + 2 * pad;
  const int h = 7 * scale + 2 * pad;  // the glyphs' cap height is 7 units
  int left = static_cast<int>(std::lround(x)), top = static_cast<int>(std::lround(y));
  left = std::clamp(left, 0, std::max(0, image.width - w));
  top = std::clamp(top, 0, std::max(0, image.height - h));
  fill_rect(image, left, top, left + w, top + h, background);
  std::vector<char> vertices(ascii.size() * 300 + 64);
  const int quads = stb_easy_font_print(0, 0, ascii.data(), nullptr, vertices.data(), static_cast<int>(vertices.size()));
  const Colour ink = text_colour(background);
  constexpr int kVertexBytes = 16;  // x, y, z floats and 4 colour bytes
  for (int q = 0; q < quads; ++q) {
    float corner[2][2];  // the quad's first and third vertex are opposite corners
    for (int k = 0; k < 2; ++k)
      std::memcpy(corner[k], vertices.data() + (4 * q + 2 * k) * kVertexBytes, sizeof(corner[k]));
    fill_rect(image, left + pad + static_cast<int>(corner[0][0] * scale), top + pad + static_cast<int>(corner[0][1] * scale),
              left + pad + static_cast<int>(corner[1][0] * scale), top + pad + static_cast<int>(corner[1][1] * scale), ink);
  }
}

void draw_detection(Image& image, const Box& box, std::string_view name, double score) {
  const Colour colour = class_colour(box.cls);
  const int scale = std::max(image.width, image.height) >= 480 ? 2 : 1;
  draw_box(image, box, colour, scale);
  std::string text(name);
  if (score >= 0) {
    char buffer[16];
    std::snprintf(buffer, sizeof buffer, " %.2f", score);
    text += buffer;
  }
  draw_label(image, box.x1, box.y1 - static_cast<float>(9 * scale), text, colour, scale);
}

std::string encode_png(const Image& image) {
  if (image.width <= 0 || image.height <= 0) throw DataError("encode_png: empty image");
  const size_t plane = static_cast<size_t>(image.width) * image.height;
  std::vector<unsigned char> rgb(plane * 3);
  for (size_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c)
      rgb[i * 3 + c] = static_cast<unsigned char>(std::lround(std::clamp(image.pixels[c * plane + i], 0.0f, 1.0f) * 255.0f));
  std::string bytes;
  auto append = [](void* context, void* data, int size) {
    static_cast<std::string*>(context)->append(static_cast<const char*>(data), static_cast<size_t>(size));
  };
  if (!stbi_write_png_to_func(append, &bytes, image.width, image.height, 3, rgb.data(), image.width * 3))
    throw BackendError("encode_png: stb_image_write failed on a " + std::to_string(image.width) + "x" +
                       std::to_string(image.height) + " image");
  return bytes;
}

void draw_detections(Image& image, std::span<const Detection> detections, const std::vector<std::string>& names) {
  for (const Detection& d : detections) {
    const int64_t c = d.box.cls;
    draw_detection(image, d.box, c >= 0 && c < static_cast<int64_t>(names.size()) ? names[c] : std::to_string(c), d.score);
  }
}

void save_png(const Image& image, const std::string& path) { write_file_atomically(path, encode_png(image)); }

}  // namespace onnxtrain
