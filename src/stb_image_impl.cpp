// stb_image's implementation, in a translation unit of its own: its allocations go through a
// per-thread cap (data_internal.h), and sanitizer builds relax, for this file only, the one
// check stb_image trips on well-formed-enough input (CMakeLists.txt: a PNG with an empty IDAT
// chunk makes it memcpy 0 bytes to a null buffer, which UBSan's nonnull-attribute check
// reports although no byte moves; found by fuzz_image).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "src/data_internal.h"

namespace {
thread_local size_t t_stb_allocation_cap = SIZE_MAX;
void* stb_malloc(size_t n) { return n > t_stb_allocation_cap ? nullptr : std::malloc(n); }
void* stb_realloc(void* p, size_t n) { return n > t_stb_allocation_cap ? nullptr : std::realloc(p, n); }
}  // namespace

namespace onnxtrain::data {
void set_stb_allocation_cap(size_t bytes) { t_stb_allocation_cap = bytes; }
}  // namespace onnxtrain::data

#define STBI_MALLOC(n) stb_malloc(n)
#define STBI_REALLOC(p, n) stb_realloc(p, n)
#define STBI_FREE(p) std::free(p)

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_IMPLEMENTATION
#include <stb/stb_image.h>
#pragma GCC diagnostic pop

namespace onnxtrain::data {
// stb_image's own TGA test (TGA has no magic number: stb tries it after every other format,
// and no other format's magic passes it).
bool stb_reads_as_tga(std::string_view bytes) {
  stbi__context s;
  stbi__start_mem(&s, reinterpret_cast<const stbi_uc*>(bytes.data()), static_cast<int>(bytes.size()));
  return stbi__tga_test(&s) != 0;
}
}  // namespace onnxtrain::data
