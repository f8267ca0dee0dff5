#pragma once
// The subset of the zip format that .npz files use: stored and raw-deflate members, zip64
// extensions, one disk, no encryption. Reading trusts only the central directory (numpy
// writes local headers with zip64 placeholder sizes), and every failure is a DataError
// prefixed with the archive's name and, where known, the member's.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace onnxtrain::zip {

struct Member {
  std::string name;
  uint16_t method = 0;  // 0 stored, 8 deflate
  uint16_t flags = 0;
  uint32_t crc32 = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  uint64_t local_header_offset = 0;
};

// True when `bytes` starts like a zip archive (a local file header or an empty archive).
bool looks_like_zip(std::string_view bytes);

// Parses the end-of-central-directory record (zip64 or not) and the central directory.
// `what` names the archive in error messages, e.g. "'model.npz'".
std::vector<Member> read_directory(std::string_view archive, const std::string& what);

// The member's contents, decompressed and CRC-checked. Stored members are returned as a view
// into `archive`; deflated ones are inflated into `scratch`, which the view then points into.
std::string_view read_member(std::string_view archive, const Member& member, const std::string& what,
                             std::string& scratch);

// A member to write, given as consecutive pieces so that callers need not concatenate a
// header and a large payload first.
struct Entry {
  std::string name;
  std::vector<std::string_view> pieces;
};

// The bytes of a complete archive. Members are stored or deflated; zip64 records are written
// where a size, an offset or the member count overflows the classic fields, or everywhere
// with `force_zip64` (tests). Timestamps are fixed (1980-01-01) so output is reproducible.
std::string write_archive(const std::vector<Entry>& entries, bool deflate, bool force_zip64 = false);

}  // namespace onnxtrain::zip
