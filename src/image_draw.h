#pragma once
// Pictures of results for a run directory: rectangles and text drawn into an Image, and
// the Image as PNG bytes. Used for predicted boxes (detection) and labelled previews.
#include <array>
#include <string>
#include <string_view>

#include "onnxtrain/detection.h"

namespace onnxtrain {

using Colour = std::array<float, 3>;  // in [0, 1]

// A distinct colour per class id (cycling after 20).
Colour class_colour(int64_t cls);

// The box's outline, `thickness` pixels inward from its edges, clipped to the image.
void draw_box(Image& image, const Box& box, const Colour& colour, int thickness = 2);
// `text` (ASCII) in stb_easy_font's glyphs scaled by `scale`, on a filled background
// rectangle whose top left corner is (x, y), moved inside the image when it would leave it.
void draw_label(Image& image, float x, float y, std::string_view text, const Colour& background, int scale = 1);
// A box with its class name (and score when >= 0) above it, in the class's colour.
void draw_detection(Image& image, const Box& box, std::string_view name, double score);

// The image as an 8-bit RGB PNG file's bytes.
std::string encode_png(const Image& image);

}  // namespace onnxtrain
