// Image folders (torchvision's ImageFolder layout) decoded with stb_image, resized, cropped,
// optionally flipped and normalised into NCHW float32 batches.
#include <algorithm>
#include <array>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "onnxtrain/data.h"
#include "onnxtrain/memory_limit.h"
#include "src/data_internal.h"

#include <stb/stb_image.h>  // the implementation: src/stb_image_impl.cpp

namespace onnxtrain {
namespace {

namespace fs = std::filesystem;

constexpr std::array<const char*, 10> kExtensions = {".png", ".jpg", ".jpeg", ".bmp", ".gif",
                                                     ".tga", ".psd", ".pnm", ".ppm", ".pgm"};
constexpr std::array<float, 3> kImageNetMean = {0.485f, 0.456f, 0.406f};
constexpr std::array<float, 3> kImageNetStd = {0.229f, 0.224f, 0.225f};

}  // namespace

namespace data {

bool image_extension(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(kExtensions.begin(), kExtensions.end(), ext) != kExtensions.end();
}

AxisWeights axis_weights(int in, int out, int begin, int count) {
  const double scale = static_cast<double>(in) / out;
  const double filter_scale = std::max(scale, 1.0);
  const double support = filter_scale;  // the triangle's support is 1
  AxisWeights aw;
  for (int o = begin; o < begin + count; ++o) {
    const double center = (o + 0.5) * scale;
    const int lo = std::max(0, static_cast<int>(center - support + 0.5));
    const int hi = std::min(in, static_cast<int>(center + support + 0.5));
    std::vector<double> w;
    double total = 0;
    for (int x = lo; x < hi; ++x) {
      const double t = std::fabs((x - center + 0.5) / filter_scale);
      w.push_back(t < 1 ? 1 - t : 0);
      total += w.back();
    }
    aw.first.push_back(lo);
    aw.weights.emplace_back();
    for (double v : w) aw.weights.back().push_back(static_cast<float>(v / total));
  }
  return aw;
}

namespace {

// A file size we could not learn: the checks that compare against it pass.
constexpr uint64_t kUnknownSize = UINT64_MAX;

// Binary PNM (P5, P6) headers are checked before stb_image sees them:
// - stb_image 2.27 reads the header's numbers into an int without an overflow check
//   (undefined behaviour, found by fuzz_image): a number of more than 9 digits is refused;
// - it decodes a file whose pixel data is cut short as if the missing bytes were zeros
//   (found by fuzz_image: a 20-byte P6 claiming 1004x1106 16-bit pixels took seconds):
//   PNM is uncompressed, so the file must hold every byte the header promises.
void check_pnm_header(const std::string& path, std::string_view bytes, uint64_t file_bytes) {
  if (bytes.size() < 2 || bytes[0] != 'P' || (bytes[1] != '5' && bytes[1] != '6')) return;
  size_t next = 2;
  auto get = [&] { return next < bytes.size() ? static_cast<unsigned char>(bytes[next++]) : EOF; };
  int c = get();
  uint64_t fields[3] = {};  // width, height, maxval
  for (uint64_t& value : fields) {
    while (c != EOF && (std::isspace(c) || c == '#')) {
      if (c == '#')
        while (c != EOF && c != '\n' && c != '\r') c = get();
      else
        c = get();
    }
    int digits = 0;
    for (; c != EOF && std::isdigit(c); c = get()) {
      if (++digits > 9) throw DataError(quoted(path) + ": the PNM header holds a number too large for an image");
      value = value * 10 + static_cast<uint64_t>(c - '0');
    }
    if (digits == 0) return;  // malformed: stb_image says so
  }
  if (c == EOF || !std::isspace(c) || fields[2] == 0 || fields[2] > 65535) return;  // stb_image refuses it
  // One whitespace byte ends the header; the samples follow.
  const uint64_t data_start = next;
  const uint64_t channels = bytes[1] == '6' ? 3 : 1, sample_bytes = fields[2] > 255 ? 2 : 1;
  const uint64_t needed = fields[0] * fields[1] * channels * sample_bytes;
  if (file_bytes != kUnknownSize && file_bytes - std::min(file_bytes, data_start) < needed)
    throw DataError(quoted(path) + ": the PNM header gives " + std::to_string(fields[0]) + "x" +
                    std::to_string(fields[1]) + " pixels of " + std::to_string(channels * sample_bytes) +
                    " bytes, " + std::to_string(needed) + " bytes in all, but the file holds " +
                    std::to_string(file_bytes - std::min(file_bytes, data_start)) + " after its header (truncated?)");
}

// A TGA must hold the pixels its header promises: all of them stored (image types 1-3), or
// at least one run-length packet (a count byte and a pixel) per 128 of them (types 9-11).
// stb_image decodes a short file as if the missing bytes were zeros, at seconds per
// megapixel in a sanitizer build (found by fuzz_image: a 22-byte TGA claiming 250x3896).
void check_tga_size(const std::string& path, std::string_view bytes, uint64_t file_bytes) {
  if (!stb_reads_as_tga(bytes)) return;
  unsigned char h[18] = {};
  // A header cut short is no excuse: stb_image reads the missing bytes as zeros and decodes
  // on (found by fuzz_image: a 17-byte TGA claiming 1331x214 pixels, run-length encoded).
  std::copy_n(bytes.begin(), std::min(bytes.size(), sizeof h), h);
  const uint64_t id_bytes = h[0], colormap_type = h[1], image_type = h[2];
  const uint64_t colormap_bytes = colormap_type ? uint64_t{h[5]} | uint64_t{h[6]} << 8 : 0;
  const uint64_t entry_bytes = (uint64_t{h[7]} + 7) / 8;
  const uint64_t width = uint64_t{h[12]} | uint64_t{h[13]} << 8, height = uint64_t{h[14]} | uint64_t{h[15]} << 8;
  const uint64_t pixel_bytes = (uint64_t{h[16]} + 7) / 8;
  const uint64_t pixels = width * height, header = 18 + id_bytes + colormap_bytes * entry_bytes;
  const bool rle = image_type >= 9;
  const uint64_t needed = rle ? (pixels + 127) / 128 * (1 + pixel_bytes) : pixels * pixel_bytes;
  const uint64_t data = file_bytes == kUnknownSize ? needed : file_bytes - std::min(file_bytes, header);
  if (data < needed)
    throw DataError(quoted(path) + ": the TGA header gives " + std::to_string(width) + "x" + std::to_string(height) +
                    " pixels of " + std::to_string(pixel_bytes) + " bytes" + (rle ? ", run-length encoded" : "") +
                    ", which need at least " + std::to_string(needed) + " bytes, but the file holds " +
                    std::to_string(data) + " after its header (truncated?)");
}

// stb_image 2.27 builds a JPEG Huffman table from the 16 code counts of a DHT segment
// without checking that they add up to at most 256, and then writes that many entries into
// 257-entry arrays (found by fuzz_image: a heap overflow). Every DHT table in the file, before
// and between scans, is checked here first.
void check_jpeg_huffman_tables(const std::string& path, std::string_view bytes) {
  auto at = [&](size_t i) { return i < bytes.size() ? static_cast<unsigned char>(bytes[i]) : 0u; };
  // stb_image takes any run of 0xFF before the SOI marker.
  size_t i = 1;
  while (at(0) == 0xFF && i < bytes.size() && at(i) == 0xFF) ++i;
  if (at(0) != 0xFF || at(i) != 0xD8) return;  // not a JPEG
  ++i;
  while (i + 1 < bytes.size()) {
    if (at(i) != 0xFF) {  // entropy-coded data after a scan: find the next marker
      ++i;
      continue;
    }
    const unsigned marker = at(i + 1);
    if (marker == 0xFF) {  // fill byte
      ++i;
      continue;
    }
    if (marker == 0x00 || (marker >= 0xD0 && marker <= 0xD8) || marker == 0x01) {  // stuffed byte, RSTn, SOI, TEM
      i += 2;
      continue;
    }
    if (marker == 0xD9) return;  // EOI
    if (i + 3 >= bytes.size()) return;
    const size_t length = at(i + 2) << 8 | at(i + 3);
    if (marker == 0xC4) {
      // As stb_image reads it: tables while the declared length lasts, even when the last one
      // runs past it (bytes past the end of the file read as 0).
      int64_t remaining = static_cast<int64_t>(length) - 2;
      for (size_t t = i + 4; remaining > 0 && t < bytes.size();) {
        size_t codes = 0;
        for (size_t k = 1; k <= 16; ++k) codes += at(t + k);
        if (codes > 256)
          throw DataError(quoted(path) + ": corrupt JPEG: a Huffman table at byte " + std::to_string(t) + " holds " +
                          std::to_string(codes) + " codes (at most 256)");
        t += 17 + codes;
        remaining -= static_cast<int64_t>(17 + codes);
      }
    }
    i += 2 + length;
  }
}

// A header's size, checked before decoding allocates it: positive, the decoded pixels within
// the memory limit, and no more pixels than the file's bytes can describe.
void check_dimensions(const std::string& path, int w, int h, uint64_t file_bytes) {
  if (w <= 0 || h <= 0)
    throw DataError(quoted(path) + ": the image header gives an empty size " + std::to_string(w) + "x" + std::to_string(h));
  const uint64_t pixels = static_cast<uint64_t>(w) * static_cast<uint64_t>(h) * 4;
  if (auto problem = memory_limit_problem(pixels, quoted(path) + " (" + std::to_string(w) + "x" + std::to_string(h) + ")");
      !problem.empty())
    throw DataError(problem);
  // No format packs more than ~2,700 pixels into a byte (LZW at its best; deflate ~1,000):
  // a header claiming more describes data that is not there, and stb would spend minutes
  // decoding zeros (found by fuzz_image: a 127-byte TGA of 33274x3855 pixels).
  if (file_bytes != kUnknownSize && static_cast<uint64_t>(w) * static_cast<uint64_t>(h) > (file_bytes << 12) + (uint64_t{1} << 20))
    throw DataError(quoted(path) + ": the header claims " + std::to_string(w) + "x" + std::to_string(h) +
                    " pixels, more than its " + std::to_string(file_bytes) + " bytes can hold (corrupt?)");
}

// The file's bytes, for stb_image's memory readers: its file reader rewinds between the
// formats it tries only within its 128-byte buffer, so after a format test read further it
// parses the middle of the file as the next format (found by fuzz_image: a JPEG-looking file
// with "P6" and a 10-digit width at byte 128 reached stb's PNM integer parser, which
// overflows an int). From memory every test starts at byte 0, where our checks look.
// False when the file cannot be opened. `limit` > 0: at most that many bytes (headers).
bool read_file(const std::string& path, std::string& bytes, size_t limit = 0) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  if (limit) {
    bytes.resize(limit);
    in.read(bytes.data(), static_cast<std::streamsize>(limit));
    bytes.resize(static_cast<size_t>(in.gcount()));
    return true;
  }
  bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    throw DataError(quoted(path) + ": image files over 2 GiB are not supported");
  return true;
}

const stbi_uc* bytes_of(const std::string& b) { return reinterpret_cast<const stbi_uc*>(b.data()); }
int length_of(const std::string& b) { return static_cast<int>(b.size()); }

// stb_image 2.27 converts the channels of a 16-bit PNM as if it had 8 bits, overrunning its
// buffer (found by fuzz_image): such files decode in their own channel count and are
// converted here with stb's luminance weights.
stbi_uc* load_pixels(const std::string& bytes, int* w, int* h, int channels) {
  int file_channels = 0;
  const bool pnm = bytes.size() >= 2 && bytes[0] == 'P' && (bytes[1] == '5' || bytes[1] == '6');
  if (!pnm || !stbi_is_16_bit_from_memory(bytes_of(bytes), length_of(bytes)))
    return stbi_load_from_memory(bytes_of(bytes), length_of(bytes), w, h, &file_channels, channels);
  stbi_uc* native = stbi_load_from_memory(bytes_of(bytes), length_of(bytes), w, h, &file_channels, 0);
  if (!native || file_channels == channels) return native;
  const size_t n = static_cast<size_t>(*w) * static_cast<size_t>(*h);
  auto* out = static_cast<stbi_uc*>(std::malloc(n * static_cast<size_t>(channels)));
  for (size_t i = 0; out && i < n; ++i) {
    const stbi_uc* p = native + i * static_cast<size_t>(file_channels);
    if (channels == 1)
      out[i] = static_cast<stbi_uc>((p[0] * 77 + p[1] * 150 + 29 * p[2]) >> 8);
    else
      out[3 * i] = out[3 * i + 1] = out[3 * i + 2] = p[0];
  }
  stbi_image_free(native);
  return out;
}

// Everything checked on exactly the bytes stb_image is about to see (`file_bytes`: the whole
// file's size), then their size from stb's header reader; false with its reason.
bool checked_size(const std::string& path, const std::string& bytes, uint64_t file_bytes, int& width, int& height,
                  std::string& why) {
  check_pnm_header(path, bytes, file_bytes);
  check_tga_size(path, bytes, file_bytes);
  check_jpeg_huffman_tables(path, bytes);
  int comp = 0;
  if (!stbi_info_from_memory(bytes_of(bytes), length_of(bytes), &width, &height, &comp)) {
    why = stbi_failure_reason();
    return false;
  }
  check_dimensions(path, width, height, file_bytes);
  return true;
}

}  // namespace

bool read_image_size(const std::string& path, int& width, int& height, std::string& why) {
  // The header is near the start (after EXIF data in a JPEG): the whole file only if the
  // first 64 KiB do not hold it, so opening a folder reads little of each image.
  constexpr size_t kHeaderBytes = 64 * 1024;
  std::string bytes;
  if (!read_file(path, bytes, kHeaderBytes)) {
    why = "can't fopen";  // as stb_image's file reader put it
    return false;
  }
  std::error_code ec;
  const uint64_t size = fs::file_size(path, ec);
  const uint64_t file_bytes = ec ? kUnknownSize : size;
  if (checked_size(path, bytes, file_bytes, width, height, why)) return true;
  if (bytes.size() < kHeaderBytes) return false;
  read_file(path, bytes);
  return checked_size(path, bytes, bytes.size(), width, height, why);
}

DecodedImage decode_image(const std::string& path, int channels) {
  DecodedImage image;
  // One read: the checks (the file may have changed since it was listed), the header and the
  // decode all see these bytes.
  std::string bytes, why;
  if (!read_file(path, bytes)) why = "can't fopen";
  if (!why.empty() || !checked_size(path, bytes, bytes.size(), image.width, image.height, why))
    throw DataError(quoted(path) + ": cannot decode the image (" + why + ")");
  // No buffer of a decode needs more than the file (compressed data) or 16 bytes a pixel
  // (4 channels of 16 bits, twice): a larger request comes from a corrupt size field.
  set_stb_allocation_cap(static_cast<size_t>(
      std::max<uint64_t>(bytes.size(), 16ull * static_cast<uint64_t>(image.width) * static_cast<uint64_t>(image.height)) +
      (1u << 20)));
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(load_pixels(bytes, &image.width, &image.height, channels), stbi_image_free);
  set_stb_allocation_cap(SIZE_MAX);
  if (!pixels) throw DataError(quoted(path) + ": cannot decode the image (" + stbi_failure_reason() + ")");
  image.pixels.assign(pixels.get(), pixels.get() + static_cast<size_t>(image.width) * image.height * channels);
  return image;
}

}  // namespace data

namespace {

bool hidden(const fs::path& p) { return p.filename().string().starts_with("."); }

std::vector<fs::path> sorted_entries(const fs::path& dir, bool directories) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw DataError("cannot read the directory " + data::quoted(dir.string()) + ": " + ec.message());
  for (const auto& entry : it) {
    if (hidden(entry.path())) continue;
    if (directories ? entry.is_directory(ec) : entry.is_regular_file(ec) && data::image_extension(entry.path().string()))
      out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct Entry {
  std::string path;
  int64_t label = 0;
};

class ImageFolder final : public Dataset {
 public:
  ImageFolder(const std::string& dir, const ImageOptions& options) : options_(options), source_(data::quoted(dir)) {
    validate_options();
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) throw DataError(source_ + " is not a directory");
    for (const auto& class_dir : sorted_entries(dir, true)) {
      const auto label = static_cast<int64_t>(classes_.size());
      classes_.push_back(class_dir.filename().string());
      const auto files = sorted_entries(class_dir, false);
      if (files.empty())
        throw DataError("the class folder " + data::quoted(class_dir.string()) + " holds no images (" +
                        data::join_names({kExtensions.begin(), kExtensions.end()}) + ")");
      for (const auto& file : files) {
        // The header only: an unreadable file should stop the run now, not hours into it.
        int w = 0, h = 0;
        if (std::string why; !data::read_image_size(file.string(), w, h, why))
          throw DataError(data::quoted(file.string()) + " is not a readable image (" + why + ")");
        check_elongation(file.string(), w, h);
        if (auto [rw, rh] = resized(w, h); rw < options_.width || rh < options_.height)
          throw DataError(data::quoted(file.string()) + " is " + std::to_string(w) + "x" + std::to_string(h) +
                          " (width x height), " + std::to_string(rw) + "x" + std::to_string(rh) +
                          " once its shorter side is resized to " + std::to_string(options_.resize_to) +
                          ": too small for a " + std::to_string(options_.width) + "x" + std::to_string(options_.height) +
                          " crop");
        entries_.push_back({file.string(), label});
      }
    }
    if (classes_.empty())
      throw DataError(source_ + " has no class folders (the layout is " + dir + "/<class>/<image>)");
    const int c = options_.channels;
    schema_ = {{options_.input, DType::Float, {c, options_.height, options_.width}}, {options_.label, DType::Int64, {}}};
    std::sort(schema_.begin(), schema_.end(), [](const ArrayInfo& a, const ArrayInfo& b) { return a.name < b.name; });
  }

  int64_t size() const override { return static_cast<int64_t>(entries_.size()); }
  const std::vector<ArrayInfo>& arrays() const override { return schema_; }
  const std::string& source() const override { return source_; }
  std::vector<std::string> class_names() const override { return classes_; }

 protected:
  std::map<std::string, Tensor> read(std::span<const int64_t> indices, const std::vector<std::string>& names,
                                     const BatchOptions& batch) const override {
    std::map<std::string, Tensor> out;
    const auto n = static_cast<int64_t>(indices.size());
    for (const auto& name : names) {
      if (name == options_.label) {
        Tensor labels(DType::Int64, {n});
        for (int64_t i = 0; i < n; ++i) labels.data<int64_t>()[i] = entries_[indices[i]].label;
        out.emplace(name, std::move(labels));
      } else {
        const int64_t c = options_.channels, h = options_.height, w = options_.width;
        Tensor images(DType::Float, {n, c, h, w});
        for (int64_t i = 0; i < n; ++i) {
          data::Rng rng(sample_key(batch, indices[i]));
          load(entries_[indices[i]].path, batch.augment ? &rng : nullptr, images.data<float>() + i * c * h * w);
        }
        out.emplace(name, std::move(images));
      }
    }
    return out;
  }

 private:
  void validate_options() {
    ImageOptions& o = options_;
    if (o.channels != 1 && o.channels != 3)
      throw DataError(source_ + ": images have 1 or 3 channels, not " + std::to_string(o.channels));
    if (o.height <= 0 || o.width <= 0)
      throw DataError(source_ + ": the image height and width (the crop size) must be set and positive");
    if (o.resize_to == 0) o.resize_to = std::max(o.height, o.width);
    if (o.resize_to < std::min(o.height, o.width))
      throw DataError(source_ + ": resizing the shorter side to " + std::to_string(o.resize_to) +
                      " leaves too little for a " + std::to_string(o.height) + "x" + std::to_string(o.width) + " crop");
    if (o.input.empty() || o.label.empty() || o.input == o.label)
      throw DataError(source_ + ": the image and label arrays need two different, non-empty names");
    auto fill = [&](std::vector<float>& v, const std::array<float, 3>& imagenet, float gray, const char* what) {
      if (v.empty()) v = o.channels == 3 ? std::vector<float>(imagenet.begin(), imagenet.end()) : std::vector<float>{gray};
      if (v.size() != static_cast<size_t>(o.channels))
        throw DataError(source_ + ": " + std::to_string(v.size()) + " " + what + " values for " +
                        std::to_string(o.channels) + " channels");
    };
    fill(o.mean, kImageNetMean, 0.0f, "mean");
    fill(o.std, kImageNetStd, 1.0f, "std");
    for (float s : o.std)
      if (!(s > 0)) throw DataError(source_ + ": normalisation std values must be positive");
  }

  // The resize of a header's size must stay representable.
  void check_elongation(const std::string& path, int w, int h) const {
    const int64_t r = options_.resize_to, longer = std::max(w, h), shorter = std::min(w, h);
    if (r * longer / shorter > INT_MAX)
      throw DataError(data::quoted(path) + " is " + std::to_string(w) + "x" + std::to_string(h) +
                      ": too elongated to resize its shorter side to " + std::to_string(r));
  }

  // torchvision's Resize(int): the shorter side becomes resize_to, the longer one scales
  // with it (rounded down). Returns (width, height).
  std::pair<int, int> resized(int w, int h) const {
    const int64_t r = options_.resize_to;
    return {static_cast<int>(w <= h ? r : r * w / h), static_cast<int>(w <= h ? r * h / w : r)};
  }

  // The randomness of one sample's augmentation: a function of (seed, epoch, sample) alone.
  static uint64_t sample_key(const BatchOptions& b, int64_t sample) {
    constexpr uint64_t kDomain = 0x696d616765ull;  // "image"
    return data::combine(data::combine(data::combine(b.seed, kDomain), static_cast<uint64_t>(b.epoch)),
                         static_cast<uint64_t>(sample));
  }

  // Decodes, resizes, crops (randomly and maybe flipped when `rng` is given, else centered)
  // and normalises one image into `out` ([channels, height, width]).
  void load(const std::string& path, data::Rng* rng, float* out) const;

  ImageOptions options_;
  std::string source_;
  std::vector<std::string> classes_;
  std::vector<Entry> entries_;
  std::vector<ArrayInfo> schema_;
};

void ImageFolder::load(const std::string& path, data::Rng* rng, float* out) const {
  const int channels = options_.channels, height = options_.height, width = options_.width;
  const data::DecodedImage image = data::decode_image(path, channels);
  const int w = image.width, h = image.height;
  check_elongation(path, w, h);

  const auto [rw, rh] = resized(w, h);
  if (rw < width || rh < height)  // the file changed since the dataset was opened
    throw DataError(data::quoted(path) + ": the image is too small for the crop (it changed since it was opened?)");
  int top, left;
  bool flip = false;
  if (rng && options_.crop == ImageOptions::Crop::Random) {
    top = static_cast<int>(rng->below(static_cast<uint64_t>(rh - height) + 1));
    left = static_cast<int>(rng->below(static_cast<uint64_t>(rw - width) + 1));
  } else {
    // torchvision's CenterCrop: Python's round(), which rounds halves to even like nearbyint.
    top = static_cast<int>(std::nearbyint((rh - height) / 2.0));
    left = static_cast<int>(std::nearbyint((rw - width) / 2.0));
  }
  if (rng && options_.hflip) flip = rng->below(2) == 1;

  // Only the cropped pixels are computed: columns first over the source rows the crop needs,
  // then rows.
  const data::AxisWeights wx = data::axis_weights(w, rw, left, width);
  const data::AxisWeights wy = data::axis_weights(h, rh, top, height);
  const int row_lo = wy.first.front();
  const int row_hi = wy.first.back() + static_cast<int>(wy.weights.back().size());
  std::vector<float> columns(static_cast<size_t>(row_hi - row_lo) * width * channels);
  const unsigned char* src = image.pixels.data();
  for (int y = row_lo; y < row_hi; ++y)
    for (int j = 0; j < width; ++j) {
      float* dst = &columns[(static_cast<size_t>(y - row_lo) * width + j) * channels];
      const auto& k = wx.weights[j];
      const unsigned char* p = src + (static_cast<size_t>(y) * w + wx.first[j]) * channels;
      for (size_t t = 0; t < k.size(); ++t)
        for (int c = 0; c < channels; ++c) dst[c] += k[t] * p[t * channels + c];
    }
  for (int c = 0; c < channels; ++c) {
    const float scale = 1.0f / (255.0f * options_.std[c]);
    const float shift = options_.mean[c] / options_.std[c];
    for (int i = 0; i < height; ++i) {
      const auto& k = wy.weights[i];
      for (int j = 0; j < width; ++j) {
        float v = 0;
        for (size_t t = 0; t < k.size(); ++t)
          v += k[t] * columns[(static_cast<size_t>(wy.first[i] - row_lo + static_cast<int>(t)) * width + j) * channels + c];
        out[(static_cast<size_t>(c) * height + i) * width + (flip ? width - 1 - j : j)] = v * scale - shift;
      }
    }
  }
}

}  // namespace

DatasetPtr open_image_folder(const std::string& dir, const ImageOptions& options) {
  return std::make_shared<ImageFolder>(dir, options);
}

}  // namespace onnxtrain
