#pragma once
// Helpers shared by the data_*.cpp files (not part of the public API).
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "onnxtrain/data.h"

namespace onnxtrain::data {

// splitmix64's finaliser: a bijective, well-mixed 64-bit function.
uint64_t mix(uint64_t x);
// A key for the stream of random numbers of one (a, b) pair, e.g. (seed, epoch).
inline uint64_t combine(uint64_t a, uint64_t b) { return mix(mix(a) ^ (b + 0x9e3779b97f4a7c15ull)); }

// splitmix64: small, fast, and (unlike the std:: distributions) the same on every platform,
// which reproducible shuffles and augmentations across builds need.
class Rng {
 public:
  explicit Rng(uint64_t key) : state_(key) {}
  uint64_t next() { return mix(state_ += 0x9e3779b97f4a7c15ull); }
  // Uniform in [0, n), n > 0, without modulo bias (Lemire's multiply-and-reject).
  uint64_t below(uint64_t n);

 private:
  uint64_t state_;
};

// A uniformly random permutation of 0 .. n-1 (Fisher-Yates) determined by `key`.
std::vector<int64_t> permutation(int64_t n, uint64_t key);

std::string quoted(const std::string& path);
// "a, b, c" (or "nothing").
std::string join_names(const std::vector<std::string>& names);

std::vector<std::string> array_names(const Dataset& data);
[[noreturn]] void throw_no_array(const Dataset& data, const std::string& name);

// An in-memory arrays dataset that also reports class names (CSV files with text labels).
DatasetPtr make_array_dataset(std::map<std::string, Tensor> arrays, const std::string& source,
                              std::vector<std::string> class_names);

// ---- Image files (data_images.cpp holds stb_image) -----------------------------------------

// PNG, JPEG, BMP, GIF, TGA, PSD, PNM by extension (case-insensitive).
bool image_extension(const std::string& path);
// The size from the file's header alone; false with the decoder's reason when unreadable.
bool read_image_size(const std::string& path, int& width, int& height, std::string& why);

// stb_image trusts sizes inside a file (a PNG chunk length, say) and allocates them before
// reading; its allocations on the calling thread fail beyond this many bytes (SIZE_MAX: no
// cap). Set around each decode (src/stb_image_impl.cpp).
void set_stb_allocation_cap(size_t bytes);
// Whether stb_image takes these bytes (a file's start) for a TGA (TGA has no magic number).
bool stb_reads_as_tga(std::string_view bytes);
// Pixels interleaved (HWC), converted to `channels` (1 or 3). Throws DataError naming the file.
struct DecodedImage {
  int width = 0, height = 0;
  std::vector<unsigned char> pixels;
};
DecodedImage decode_image(const std::string& path, int channels);

// One axis of a resize with a triangle (bilinear) filter widened by the downscale factor:
// PIL's and torchvision's antialiased bilinear resize. Output pixel o (of `count` from
// `begin`) reads source pixels [first[o], first[o] + weights[o].size()).
struct AxisWeights {
  std::vector<int> first;
  std::vector<std::vector<float>> weights;
};
AxisWeights axis_weights(int in, int out, int begin, int count);

}  // namespace onnxtrain::data
