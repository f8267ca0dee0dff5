#include "src/zip_archive.h"

#include <zlib.h>

#include <algorithm>
#include <climits>
#include <cstring>
#include <set>

#include "onnxtrain/errors.h"

namespace onnxtrain::zip {
namespace {

constexpr uint32_t kLocalSig = 0x04034b50;
constexpr uint32_t kCentralSig = 0x02014b50;
constexpr uint32_t kEocdSig = 0x06054b50;
constexpr uint32_t kZip64EocdSig = 0x06064b50;
constexpr uint32_t kZip64LocatorSig = 0x07064b50;
constexpr size_t kLocalSize = 30, kCentralSize = 46, kEocdSize = 22;
constexpr size_t kZip64EocdSize = 56, kZip64LocatorSize = 20;
constexpr uint16_t kZip64ExtraId = 0x0001;
constexpr uint32_t kMax32 = 0xFFFFFFFFu;
constexpr uint16_t kMax16 = 0xFFFFu;
// zlib counts in uInt; feed it at most this much per call so >4 GiB members work.
constexpr uint64_t kZlibChunk = 1u << 30;
// Deflate cannot expand data by more than ~1032:1, so a directory entry claiming more is
// corrupt; rejecting it up front avoids allocating absurd buffers for hostile input.
constexpr uint64_t kMaxDeflateRatio = 1032;

[[noreturn]] void fail(const std::string& what, const std::string& msg) { throw DataError(what + ": " + msg); }

std::string member_what(const std::string& what, const std::string& name) { return what + " member '" + name + "'"; }

// Little-endian field access; callers have checked that the bytes exist.
uint16_t le16(std::string_view b, uint64_t off) {
  const auto* p = reinterpret_cast<const unsigned char*>(b.data() + off);
  return static_cast<uint16_t>(p[0] | p[1] << 8);
}
uint32_t le32(std::string_view b, uint64_t off) { return le16(b, off) | static_cast<uint32_t>(le16(b, off + 2)) << 16; }
uint64_t le64(std::string_view b, uint64_t off) { return le32(b, off) | static_cast<uint64_t>(le32(b, off + 4)) << 32; }

bool fits(std::string_view b, uint64_t off, uint64_t n) { return off <= b.size() && n <= b.size() - off; }

void put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v & 0xFF));
  out.push_back(static_cast<char>(v >> 8));
}
void put32(std::string& out, uint32_t v) {
  put16(out, static_cast<uint16_t>(v & 0xFFFF));
  put16(out, static_cast<uint16_t>(v >> 16));
}
void put64(std::string& out, uint64_t v) {
  put32(out, static_cast<uint32_t>(v & kMax32));
  put32(out, static_cast<uint32_t>(v >> 32));
}
void patch32(std::string& out, size_t off, uint32_t v) {
  for (int i = 0; i < 4; ++i) out[off + i] = static_cast<char>((v >> (8 * i)) & 0xFF);
}
void patch64(std::string& out, size_t off, uint64_t v) {
  patch32(out, off, static_cast<uint32_t>(v & kMax32));
  patch32(out, off + 4, static_cast<uint32_t>(v >> 32));
}

uint32_t crc_of(const char* data, uint64_t size, uint32_t crc = 0) {
  if (size == 0) return crc;  // zlib answers a null buffer with the initial value, not `crc`
  return static_cast<uint32_t>(crc32_z(crc, reinterpret_cast<const Bytef*>(data), static_cast<z_size_t>(size)));
}

std::string hex32(uint32_t v) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0x%08x", v);
  return buf;
}

std::string method_name(uint16_t method) {
  switch (method) {
    case 9: return "deflate64";
    case 12: return "bzip2";
    case 14: return "lzma";
    case 93: return "zstd";
    case 95: return "xz";
    default: return "method " + std::to_string(method);
  }
}

struct DirectoryLocation {
  uint64_t entries = 0;
  uint64_t size = 0;
  uint64_t offset = 0;
  uint64_t end = 0;  // where the directory must end: the (zip64) end record
};

size_t find_eocd(std::string_view b, const std::string& what) {
  if (b.size() >= kEocdSize) {
    // The record sits at the very end unless the archive has a comment (< 64 KiB).
    const size_t last = b.size() - kEocdSize;
    const size_t first = last > kMax16 ? last - kMax16 : 0;
    for (size_t pos = last + 1; pos-- > first;) {
      if (le32(b, pos) == kEocdSig && pos + kEocdSize + le16(b, pos + 20) <= b.size()) return pos;
    }
  }
  if (looks_like_zip(b)) fail(what, "truncated zip archive (no end-of-central-directory record)");
  fail(what, "not a zip archive (no end-of-central-directory record)");
}

DirectoryLocation locate_directory(std::string_view b, const std::string& what) {
  const size_t eocd = find_eocd(b, what);
  if (le16(b, eocd + 4) != 0 || le16(b, eocd + 6) != 0)
    fail(what, "multi-volume (split) zip archives are not supported");
  DirectoryLocation loc;
  loc.entries = le16(b, eocd + 10);
  loc.size = le32(b, eocd + 12);
  loc.offset = le32(b, eocd + 16);
  loc.end = eocd;
  const bool saturated = loc.entries == kMax16 || loc.size == kMax32 || loc.offset == kMax32;
  const bool has_locator = eocd >= kZip64LocatorSize && le32(b, eocd - kZip64LocatorSize) == kZip64LocatorSig;
  if (!has_locator) {
    if (saturated) fail(what, "zip64 end-of-central-directory locator missing (truncated or corrupt archive)");
    if (le16(b, eocd + 8) != loc.entries) fail(what, "corrupt end-of-central-directory record (entry counts differ)");
    return loc;
  }
  const size_t locator = eocd - kZip64LocatorSize;
  const uint64_t record = le64(b, locator + 8);
  if (le32(b, locator + 4) != 0 || le32(b, locator + 16) > 1)
    fail(what, "multi-volume (split) zip archives are not supported");
  if (record > locator || locator - record < kZip64EocdSize || le32(b, record) != kZip64EocdSig)
    fail(what, "corrupt zip64 end-of-central-directory record");
  if (le32(b, record + 16) != 0 || le32(b, record + 20) != 0)
    fail(what, "multi-volume (split) zip archives are not supported");
  loc.entries = le64(b, record + 32);
  if (le64(b, record + 24) != loc.entries)
    fail(what, "corrupt zip64 end-of-central-directory record (entry counts differ)");
  loc.size = le64(b, record + 40);
  loc.offset = le64(b, record + 48);
  loc.end = record;
  return loc;
}

// Replaces saturated 32-bit fields by their values from the zip64 extra field, which lists
// exactly the saturated ones in this order.
void apply_zip64_extra(std::string_view extra, Member& m, uint32_t disk_start, const std::string& mwhat) {
  const bool need_u = m.uncompressed_size == kMax32, need_c = m.compressed_size == kMax32;
  const bool need_o = m.local_header_offset == kMax32, need_d = disk_start == kMax16;
  if (!need_u && !need_c && !need_o && !need_d) return;
  for (size_t pos = 0; pos + 4 <= extra.size();) {
    const uint16_t id = le16(extra, pos), len = le16(extra, pos + 2);
    if (len > extra.size() - pos - 4) break;
    if (id == kZip64ExtraId) {
      const std::string_view f = extra.substr(pos + 4, len);
      size_t at = 0;
      auto take64 = [&](uint64_t& v) {
        if (at + 8 > f.size()) fail(mwhat, "zip64 extra field too short");
        v = le64(f, at);
        at += 8;
      };
      if (need_u) take64(m.uncompressed_size);
      if (need_c) take64(m.compressed_size);
      if (need_o) take64(m.local_header_offset);
      if (need_d && (at + 4 > f.size() || le32(f, at) != 0))
        fail(mwhat, "member on another volume (split archives are not supported)");
      return;
    }
    pos += 4 + len;
  }
  fail(mwhat, "sizes are marked as zip64 but the zip64 extra field is missing");
}

}  // namespace

bool looks_like_zip(std::string_view b) { return b.size() >= 4 && (le32(b, 0) == kLocalSig || le32(b, 0) == kEocdSig); }

std::vector<Member> read_directory(std::string_view b, const std::string& what) {
  const DirectoryLocation loc = locate_directory(b, what);
  if (loc.offset > loc.end || loc.size > loc.end - loc.offset)
    fail(what, "central directory lies outside the archive (truncated or corrupt)");
  if (loc.entries > loc.size / kCentralSize)
    fail(what, "corrupt end-of-central-directory record (" + std::to_string(loc.entries) + " entries cannot fit in " +
                   std::to_string(loc.size) + " bytes)");
  std::vector<Member> members;
  members.reserve(loc.entries);
  std::set<std::string> names;
  const std::string_view dir = b.substr(loc.offset, loc.size);
  size_t pos = 0;
  for (uint64_t i = 0; i < loc.entries; ++i) {
    if (!fits(dir, pos, kCentralSize) || le32(dir, pos) != kCentralSig)
      fail(what, "corrupt central directory (entry " + std::to_string(i) + ")");
    const uint16_t name_len = le16(dir, pos + 28), extra_len = le16(dir, pos + 30), comment_len = le16(dir, pos + 32);
    if (!fits(dir, pos + kCentralSize, uint64_t{name_len} + extra_len + comment_len))
      fail(what, "corrupt central directory (entry " + std::to_string(i) + " overruns it)");
    Member m;
    m.flags = le16(dir, pos + 8);
    m.method = le16(dir, pos + 10);
    m.crc32 = le32(dir, pos + 16);
    m.compressed_size = le32(dir, pos + 20);
    m.uncompressed_size = le32(dir, pos + 24);
    m.local_header_offset = le32(dir, pos + 42);
    m.name = std::string(dir.substr(pos + kCentralSize, name_len));
    const std::string mwhat = member_what(what, m.name);
    apply_zip64_extra(dir.substr(pos + kCentralSize + name_len, extra_len), m, le16(dir, pos + 34), mwhat);
    if (!names.insert(m.name).second) fail(mwhat, "appears twice in the archive");
    members.push_back(std::move(m));
    pos += kCentralSize + name_len + extra_len + comment_len;
  }
  return members;
}

std::string_view read_member(std::string_view b, const Member& m, const std::string& what, std::string& scratch) {
  const std::string mwhat = member_what(what, m.name);
  if (m.flags & 0x1) fail(mwhat, "encrypted members are not supported");
  if (m.method != 0 && m.method != 8)
    fail(mwhat, "unsupported compression (" + method_name(m.method) + "; only stored and deflate are supported)");
  const uint64_t off = m.local_header_offset;
  if (!fits(b, off, kLocalSize) || le32(b, off) != kLocalSig)
    fail(mwhat, "local file header missing (truncated or corrupt archive)");
  const uint64_t data_off = off + kLocalSize + le16(b, off + 26) + le16(b, off + 28);
  if (!fits(b, data_off, m.compressed_size))
    fail(mwhat, "truncated: " + std::to_string(m.compressed_size) + " bytes of data expected");
  const std::string_view packed = b.substr(data_off, m.compressed_size);

  std::string_view data;
  if (m.method == 0) {
    if (m.compressed_size != m.uncompressed_size)
      fail(mwhat, "stored member with different compressed and uncompressed sizes");
    data = packed;
  } else {
    if (m.uncompressed_size / kMaxDeflateRatio > m.compressed_size)
      fail(mwhat, "corrupt sizes: " + std::to_string(m.compressed_size) + " deflated bytes cannot hold " +
                      std::to_string(m.uncompressed_size));
    // One spare byte makes data beyond the declared size visible instead of silently cut.
    scratch.assign(m.uncompressed_size + 1, '\0');
    z_stream zs{};
    if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) throw BackendError(mwhat + ": zlib inflateInit2 failed");
    uint64_t in_done = 0, out_done = 0;
    int ret = Z_OK;
    while (ret != Z_STREAM_END) {
      const uint64_t in_left = packed.size() - in_done, out_left = scratch.size() - out_done;
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(packed.data() + in_done));
      zs.avail_in = static_cast<uInt>(std::min(in_left, kZlibChunk));
      zs.next_out = reinterpret_cast<Bytef*>(scratch.data() + out_done);
      zs.avail_out = static_cast<uInt>(std::min(out_left, kZlibChunk));
      const uInt in_before = zs.avail_in, out_before = zs.avail_out;
      ret = inflate(&zs, Z_NO_FLUSH);
      in_done += in_before - zs.avail_in;
      out_done += out_before - zs.avail_out;
      if (ret == Z_STREAM_END) break;
      std::string problem;
      if (ret == Z_DATA_ERROR)
        problem = std::string("corrupt deflate data (") + (zs.msg ? zs.msg : "?") + ")";
      else if (ret == Z_MEM_ERROR)
        problem = "out of memory while inflating";
      else if (out_done > m.uncompressed_size)
        problem = "inflates to more than the declared " + std::to_string(m.uncompressed_size) + " bytes";
      else if (ret == Z_BUF_ERROR && in_done == packed.size())
        problem = "truncated deflate stream";
      else if (ret != Z_OK && ret != Z_BUF_ERROR)
        problem = "zlib inflate error " + std::to_string(ret);
      if (!problem.empty()) {
        inflateEnd(&zs);
        fail(mwhat, problem);
      }
    }
    inflateEnd(&zs);
    if (out_done != m.uncompressed_size)
      fail(mwhat, "inflates to " + std::to_string(out_done) + " bytes, the directory says " +
                      std::to_string(m.uncompressed_size));
    scratch.resize(m.uncompressed_size);
    data = scratch;
  }
  const uint32_t crc = crc_of(data.data(), data.size());
  if (crc != m.crc32) fail(mwhat, "CRC-32 mismatch (stored " + hex32(m.crc32) + ", computed " + hex32(crc) + ")");
  return data;
}

namespace {

// Appends the raw deflate stream of `pieces` to `out`; returns the compressed size.
uint64_t deflate_into(std::string& out, const std::vector<std::string_view>& pieces, uint64_t total) {
  z_stream zs{};
  if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -MAX_WBITS, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    throw BackendError("zlib deflateInit2 failed");
  const size_t start = out.size();
  size_t used = start;
  // Not the full deflateBound: arrays usually shrink, and a bound-sized buffer would double the
  // peak memory of writing a large archive. The pump grows the buffer when needed.
  out.resize(start + std::min<uint64_t>(deflateBound(&zs, static_cast<uLong>(total)), total / 2 + 65536));
  auto pump = [&](int flush) {
    int ret;
    do {
      if (used == out.size()) out.resize(out.size() + out.size() / 2 + 4096);
      zs.next_out = reinterpret_cast<Bytef*>(out.data() + used);
      zs.avail_out = static_cast<uInt>(std::min<uint64_t>(out.size() - used, kZlibChunk));
      const uInt before = zs.avail_out;
      ret = deflate(&zs, flush);
      used += before - zs.avail_out;
      if (ret == Z_STREAM_ERROR) {
        deflateEnd(&zs);
        throw BackendError("zlib deflate failed");
      }
    } while (flush == Z_FINISH ? ret != Z_STREAM_END : zs.avail_in > 0);
  };
  for (std::string_view piece : pieces) {
    for (size_t done = 0; done < piece.size();) {
      const size_t n = std::min<uint64_t>(piece.size() - done, kZlibChunk);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(piece.data() + done));
      zs.avail_in = static_cast<uInt>(n);
      pump(Z_NO_FLUSH);
      done += n;
    }
  }
  zs.avail_in = 0;
  pump(Z_FINISH);
  deflateEnd(&zs);
  out.resize(used);
  return used - start;
}

struct Written {
  std::string name;
  uint16_t method, flags;
  uint32_t crc;
  uint64_t compressed, uncompressed, offset;
};

constexpr uint16_t kVersionDefault = 20, kVersionZip64 = 45;
constexpr uint16_t kMadeByUnix = 3 << 8;
constexpr uint32_t kRegularFile0644 = 0100644u << 16;
constexpr uint16_t kDosDate1980 = (0 << 9) | (1 << 5) | 1;
constexpr uint16_t kUtf8Flag = 1 << 11;

}  // namespace

std::string write_archive(const std::vector<Entry>& entries, bool deflate, bool force_zip64) {
  std::string out;
  if (!deflate) {
    // The exact size is easy to bound; growing by doubling would briefly need about three
    // times a large archive's size.
    uint64_t total = kEocdSize + kZip64EocdSize + kZip64LocatorSize;
    for (const Entry& e : entries) {
      total += kLocalSize + kCentralSize + 2 * (e.name.size() + 28);
      for (std::string_view p : e.pieces) total += p.size();
    }
    out.reserve(total);
  }
  std::vector<Written> written;
  written.reserve(entries.size());
  for (const Entry& e : entries) {
    if (e.name.size() > kMax16)
      throw DataError("zip member name longer than 65535 bytes: '" + e.name.substr(0, 64) + "...'");
    Written w{e.name, static_cast<uint16_t>(deflate ? 8 : 0), 0, 0, 0, 0, out.size()};
    if (std::any_of(e.name.begin(), e.name.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; }))
      w.flags |= kUtf8Flag;
    for (std::string_view p : e.pieces) {
      w.crc = crc_of(p.data(), p.size(), w.crc);
      w.uncompressed += p.size();
    }
    // The compressed size is known only afterwards; decide on the local zip64 extra from an
    // upper bound (stored blocks add 5 bytes per 16 KiB) and patch the sizes in later.
    const uint64_t worst = w.uncompressed + (w.uncompressed / 16000 + 1) * 5 + 64;
    const bool local64 = force_zip64 || worst >= kMax32;
    put32(out, kLocalSig);
    put16(out, local64 ? kVersionZip64 : kVersionDefault);
    put16(out, w.flags);
    put16(out, w.method);
    put16(out, 0);
    put16(out, kDosDate1980);
    put32(out, w.crc);
    const size_t sizes_at = out.size();
    put32(out, 0);
    put32(out, 0);
    put16(out, static_cast<uint16_t>(e.name.size()));
    put16(out, local64 ? 20 : 0);
    out += e.name;
    const size_t extra_at = out.size();
    if (local64) {
      put16(out, kZip64ExtraId);
      put16(out, 16);
      put64(out, 0);
      put64(out, 0);
    }
    if (deflate) {
      w.compressed = deflate_into(out, e.pieces, w.uncompressed);
    } else {
      for (std::string_view p : e.pieces) out.append(p);
      w.compressed = w.uncompressed;
    }
    if (local64) {
      patch32(out, sizes_at, kMax32);
      patch32(out, sizes_at + 4, kMax32);
      patch64(out, extra_at + 4, w.uncompressed);
      patch64(out, extra_at + 12, w.compressed);
    } else {
      patch32(out, sizes_at, static_cast<uint32_t>(w.compressed));
      patch32(out, sizes_at + 4, static_cast<uint32_t>(w.uncompressed));
    }
    written.push_back(std::move(w));
  }

  const uint64_t dir_offset = out.size();
  for (const Written& w : written) {
    const bool big_u = force_zip64 || w.uncompressed >= kMax32, big_c = force_zip64 || w.compressed >= kMax32;
    const bool big_o = force_zip64 || w.offset >= kMax32;
    std::string extra;
    if (big_u || big_c || big_o) {
      put16(extra, kZip64ExtraId);
      put16(extra, static_cast<uint16_t>(8 * (big_u + big_c + big_o)));
      if (big_u) put64(extra, w.uncompressed);
      if (big_c) put64(extra, w.compressed);
      if (big_o) put64(extra, w.offset);
    }
    const uint16_t version = extra.empty() ? kVersionDefault : kVersionZip64;
    put32(out, kCentralSig);
    put16(out, kMadeByUnix | version);
    put16(out, version);
    put16(out, w.flags);
    put16(out, w.method);
    put16(out, 0);
    put16(out, kDosDate1980);
    put32(out, w.crc);
    put32(out, big_c ? kMax32 : static_cast<uint32_t>(w.compressed));
    put32(out, big_u ? kMax32 : static_cast<uint32_t>(w.uncompressed));
    put16(out, static_cast<uint16_t>(w.name.size()));
    put16(out, static_cast<uint16_t>(extra.size()));
    put16(out, 0);  // comment
    put16(out, 0);  // disk
    put16(out, 0);  // internal attributes
    put32(out, kRegularFile0644);
    put32(out, big_o ? kMax32 : static_cast<uint32_t>(w.offset));
    out += w.name;
    out += extra;
  }
  const uint64_t dir_size = out.size() - dir_offset;
  const uint64_t count = written.size();
  const bool zip64_end = force_zip64 || count >= kMax16 || dir_size >= kMax32 || dir_offset >= kMax32;
  if (zip64_end) {
    const uint64_t record = out.size();
    put32(out, kZip64EocdSig);
    put64(out, kZip64EocdSize - 12);  // size of the rest of the record
    put16(out, kMadeByUnix | kVersionZip64);
    put16(out, kVersionZip64);
    put32(out, 0);
    put32(out, 0);
    put64(out, count);
    put64(out, count);
    put64(out, dir_size);
    put64(out, dir_offset);
    put32(out, kZip64LocatorSig);
    put32(out, 0);
    put64(out, record);
    put32(out, 1);
  }
  put32(out, kEocdSig);
  put16(out, 0);
  put16(out, 0);
  const uint16_t count16 = zip64_end ? kMax16 : static_cast<uint16_t>(count);
  put16(out, count16);
  put16(out, count16);
  put32(out, zip64_end ? kMax32 : static_cast<uint32_t>(dir_size));
  put32(out, zip64_end ? kMax32 : static_cast<uint32_t>(dir_offset));
  put16(out, 0);
  return out;
}

}  // namespace onnxtrain::zip
