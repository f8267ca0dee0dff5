#include "onnxtrain/npy.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "onnxtrain/atomic_file.h"
#include "onnxtrain/memory_limit.h"
#include "src/zip_archive.h"

namespace onnxtrain {
namespace {

constexpr std::string_view kMagic = "\x93NUMPY";
constexpr size_t kPreambleV1 = 10, kPreambleV2 = 12;
// Real headers are a few hundred bytes (numpy itself refuses more than 10000 by default);
// a larger length field means a corrupt file, and the cap bounds the work hostile input causes.
constexpr size_t kMaxHeaderLen = 1 << 20;
constexpr size_t kMaxNesting = 32;
// numpy pads headers so the data starts on this boundary, and leaves room after the dict for
// the first dimension to grow to 21 digits (so appenders can rewrite it in place).
constexpr size_t kArrayAlign = 64;
constexpr size_t kGrowthAxisDigits = 21;
constexpr bool kLittleHost = std::endian::native == std::endian::little;

[[noreturn]] void fail(const std::string& what, const std::string& msg) { throw DataError(what + ": " + msg); }

// ---- The header: a Python dict literal ----------------------------------------------------

struct PyValue {
  enum Kind { Str, Int, Bool, None, Tuple, List, Dict } kind = None;
  std::string str;
  int64_t num = 0;
  bool overflow = false;  // an integer beyond int64
  bool flag = false;
  std::vector<PyValue> items;  // Tuple, List; Dict as key, value pairs
};

class HeaderParser {
 public:
  HeaderParser(std::string_view text, const std::string& what) : s_(text), what_(what) {}

  PyValue parse() {
    PyValue v = value(0);
    skip_space();
    if (pos_ != s_.size()) garbled("unexpected text after the dictionary");
    return v;
  }

 private:
  [[noreturn]] void garbled(const std::string& why) {
    const size_t shown = std::min<size_t>(s_.size(), 120);
    fail(what_, "garbled .npy header (" + why + " at offset " + std::to_string(pos_) + "): \"" +
                    std::string(s_.substr(0, shown)) + (shown < s_.size() ? "..." : "") + "\"");
  }

  void skip_space() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) ++pos_;
  }
  bool eat(char c) {
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  bool eat_word(std::string_view w) {
    if (s_.substr(pos_, w.size()) != w) return false;
    const size_t end = pos_ + w.size();
    if (end < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[end])) || s_[end] == '_')) return false;
    pos_ = end;
    return true;
  }

  PyValue value(size_t depth) {
    if (depth > kMaxNesting) garbled("nesting too deep");
    skip_space();
    if (pos_ >= s_.size()) garbled("unexpected end");
    PyValue v;
    const char c = s_[pos_];
    if (c == '{' || c == '(' || c == '[') {
      const char close = c == '{' ? '}' : c == '(' ? ')' : ']';
      v.kind = c == '{' ? PyValue::Dict : c == '(' ? PyValue::Tuple : PyValue::List;
      ++pos_;
      bool comma = false;  // a 1-tuple needs its comma: "(5)" is the integer 5
      while (!eat(close)) {
        if (!v.items.empty() && !comma) garbled("expected ',' or '" + std::string(1, close) + "'");
        v.items.push_back(value(depth + 1));
        if (v.kind == PyValue::Dict) {
          if (!eat(':')) garbled("expected ':'");
          v.items.push_back(value(depth + 1));
        }
        comma = eat(',');
      }
      if (v.kind == PyValue::Tuple && v.items.size() == 1 && !comma) return v.items[0];
      return v;
    }
    if (c == '\'' || c == '"' ||
        ((c == 'u' || c == 'U') && pos_ + 1 < s_.size() && (s_[pos_ + 1] == '\'' || s_[pos_ + 1] == '"'))) {
      if (c == 'u' || c == 'U') ++pos_;
      const char quote = s_[pos_++];
      v.kind = PyValue::Str;
      while (true) {
        if (pos_ >= s_.size()) garbled("unterminated string");
        char ch = s_[pos_++];
        if (ch == quote) break;
        if (ch == '\\') {
          if (pos_ >= s_.size()) garbled("unterminated string");
          ch = s_[pos_++];
        }
        v.str.push_back(ch);
      }
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-' || c == '+') {
      v.kind = PyValue::Int;
      const bool negative = c == '-';
      if (c == '-' || c == '+') ++pos_;
      if (pos_ >= s_.size() || !std::isdigit(static_cast<unsigned char>(s_[pos_]))) garbled("expected a digit");
      uint64_t mag = 0;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) {
        const unsigned digit = static_cast<unsigned>(s_[pos_++] - '0');
        if (mag > (UINT64_MAX - digit) / 10)
          v.overflow = true;
        else
          mag = mag * 10 + digit;
      }
      if (pos_ < s_.size() && (s_[pos_] == 'L' || s_[pos_] == 'l')) ++pos_;  // Python 2 long
      if (mag > static_cast<uint64_t>(INT64_MAX)) v.overflow = true;
      v.num = v.overflow ? 0 : (negative ? -static_cast<int64_t>(mag) : static_cast<int64_t>(mag));
      return v;
    }
    if (eat_word("True") || eat_word("False")) {
      v.kind = PyValue::Bool;
      v.flag = s_[pos_ - 1] == 'e' && s_[pos_ - 2] == 'u';  // "True", not "False"
      return v;
    }
    if (eat_word("None")) return v;
    garbled("unexpected character");
  }

  std::string_view s_;
  const std::string& what_;
  size_t pos_ = 0;
};

struct ArrayHeader {
  DType dtype = DType::Undefined;
  size_t itemsize = 0;
  bool byteswap = false;
  bool fortran_order = false;
  Shape shape;
};

struct NumpyType {
  char kind;
  size_t size;
  DType dtype;
};
constexpr NumpyType kNumpyTypes[] = {
    {'f', 2, DType::Float16}, {'f', 4, DType::Float},  {'f', 8, DType::Double}, {'i', 1, DType::Int8},
    {'i', 2, DType::Int16},   {'i', 4, DType::Int32},  {'i', 8, DType::Int64},  {'u', 1, DType::UInt8},
    {'u', 2, DType::UInt16},  {'u', 4, DType::UInt32}, {'u', 8, DType::UInt64}, {'b', 1, DType::Bool},
};

// descr is a typestr: byte order ('<' '>' '=' '|'), kind letter, item size in bytes.
[[noreturn]] void unsupported_dtype(const std::string& what, const std::string& descr, const std::string& why) {
  fail(what, "unsupported dtype '" + descr + "'" + why);
}

void parse_descr(const std::string& descr, ArrayHeader& h, const std::string& what) {
  size_t p = 0;
  char order = '=';
  if (!descr.empty() && std::strchr("<>=|", descr[0])) order = descr[p++];
  if (p >= descr.size()) unsupported_dtype(what, descr, "");
  const char kind = descr[p++];
  const std::string size_text = descr.substr(p);
  size_t size = 0;
  if (!size_text.empty() && size_text.size() <= 4 &&
      std::all_of(size_text.begin(), size_text.end(), [](char c) { return c >= '0' && c <= '9'; }))
    size = std::stoul(size_text);
  switch (kind) {
    case 'c': unsupported_dtype(what, descr, " (complex numbers)");
    case 'O': unsupported_dtype(what, descr, " (object arrays hold pickled Python objects)");
    case 'S':
    case 'a':
    case 'U': unsupported_dtype(what, descr, " (strings)");
    case 'V': unsupported_dtype(what, descr, " (void/raw bytes)");
    case 'M':
    case 'm': unsupported_dtype(what, descr, " (datetime/timedelta)");
    default: break;
  }
  for (const NumpyType& t : kNumpyTypes)
    if (t.kind == kind && t.size == size) h.dtype = t.dtype;
  if (h.dtype == DType::Undefined) unsupported_dtype(what, descr, "");
  h.itemsize = size;
  const bool little = order == '<' || ((order == '=' || order == '|') && kLittleHost);
  h.byteswap = size > 1 && little != kLittleHost;
}

ArrayHeader parse_header(std::string_view text, const std::string& what) {
  const PyValue dict = HeaderParser(text, what).parse();
  if (dict.kind != PyValue::Dict) fail(what, "garbled .npy header (not a dictionary)");
  const PyValue *descr = nullptr, *fortran = nullptr, *shape = nullptr;
  for (size_t i = 0; i < dict.items.size(); i += 2) {
    const PyValue& key = dict.items[i];
    const PyValue* value = &dict.items[i + 1];
    const PyValue** slot = key.kind != PyValue::Str     ? nullptr
                           : key.str == "descr"         ? &descr
                           : key.str == "fortran_order" ? &fortran
                           : key.str == "shape"         ? &shape
                                                        : nullptr;
    // Like numpy, refuse unknown keys: a later format revision could give them a meaning.
    if (!slot)
      fail(what, "unexpected key in .npy header" + (key.kind == PyValue::Str ? " '" + key.str + "'" : std::string()));
    if (*slot) fail(what, "duplicate key '" + key.str + "' in .npy header");
    *slot = value;
  }
  if (!descr || !fortran || !shape) fail(what, "the .npy header lacks 'descr', 'fortran_order' or 'shape'");
  ArrayHeader h;
  if (descr->kind == PyValue::List) fail(what, "structured dtypes (record arrays) are not supported");
  if (descr->kind != PyValue::Str) fail(what, "garbled .npy header ('descr' is not a string)");
  parse_descr(descr->str, h, what);
  if (fortran->kind != PyValue::Bool) fail(what, "garbled .npy header ('fortran_order' is not True or False)");
  h.fortran_order = fortran->flag;
  if (shape->kind != PyValue::Tuple) fail(what, "garbled .npy header ('shape' is not a tuple)");
  for (const PyValue& d : shape->items) {
    if (d.kind != PyValue::Int || d.overflow || d.num < 0)
      fail(what, "invalid .npy shape (dimensions must be non-negative integers below 2^63)");
    h.shape.push_back(d.num);
  }
  return h;
}

// ---- Array data -----------------------------------------------------------------------------

template <typename Word>
void byteswap_all(void* data, size_t count) {
  auto* p = static_cast<Word*>(data);
  for (size_t i = 0; i < count; ++i) {
    if constexpr (sizeof(Word) == 2)
      p[i] = __builtin_bswap16(p[i]);
    else if constexpr (sizeof(Word) == 4)
      p[i] = __builtin_bswap32(p[i]);
    else
      p[i] = __builtin_bswap64(p[i]);
  }
}

// Reads `src`, stored column-major for `shape`, into row-major `dst`: walks the source in
// order and scatters, keeping an odometer of the destination index.
template <typename Word>
void fortran_to_c(const char* src, void* dst, const Shape& shape) {
  const size_t rank = shape.size();
  std::vector<size_t> c_stride(rank, 1), index(rank, 0);
  for (size_t k = rank - 1; k-- > 0;) c_stride[k] = c_stride[k + 1] * static_cast<size_t>(shape[k + 1]);
  const size_t count = static_cast<size_t>(shape_numel(shape));
  auto* out = static_cast<Word*>(dst);
  size_t offset = 0;
  for (size_t i = 0; i < count; ++i) {
    std::memcpy(&out[offset], src + i * sizeof(Word), sizeof(Word));
    for (size_t k = 0; k < rank; ++k) {  // dimension 0 varies fastest in Fortran order
      offset += c_stride[k];
      if (++index[k] < static_cast<size_t>(shape[k])) break;
      offset -= c_stride[k] * index[k];
      index[k] = 0;
    }
  }
}

template <typename Fn>
void with_word(size_t itemsize, Fn&& fn) {
  switch (itemsize) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
}

Tensor parse_npy_bytes(std::string_view bytes, const std::string& what) {
  if (bytes.size() < kMagic.size() || bytes.substr(0, kMagic.size()) != kMagic) {
    if (kMagic.substr(0, bytes.size()) == bytes)
      fail(what, "truncated .npy data (" + std::to_string(bytes.size()) + " bytes)");
    fail(what, "not .npy data (bad magic string)");
  }
  if (bytes.size() < kPreambleV1) fail(what, "truncated .npy data (" + std::to_string(bytes.size()) + " bytes)");
  const auto major = static_cast<unsigned char>(bytes[6]), minor = static_cast<unsigned char>(bytes[7]);
  if (major < 1 || major > 3 || minor != 0)
    fail(what, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor));
  const auto* u = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t preamble = kPreambleV1, header_len = u[8] | u[9] << 8;
  if (major >= 2) {
    if (bytes.size() < kPreambleV2) fail(what, "truncated .npy data (" + std::to_string(bytes.size()) + " bytes)");
    preamble = kPreambleV2;
    header_len = u[8] | u[9] << 8 | u[10] << 16 | static_cast<size_t>(u[11]) << 24;
  }
  if (header_len > kMaxHeaderLen)
    fail(what, ".npy header too long (" + std::to_string(header_len) + " bytes; corrupt length field?)");
  if (bytes.size() - preamble < header_len)
    fail(what, "truncated .npy data (header of " + std::to_string(header_len) + " bytes, only " +
                   std::to_string(bytes.size() - preamble) + " present)");
  const ArrayHeader h = parse_header(bytes.substr(preamble, header_len), what);

  uint64_t count = 1;
  for (int64_t d : h.shape)
    if (__builtin_mul_overflow(count, static_cast<uint64_t>(d), &count))
      fail(what, "array too large: shape " + shape_str(h.shape));
  uint64_t nbytes = 0;
  if (__builtin_mul_overflow(count, h.itemsize, &nbytes) || nbytes > static_cast<uint64_t>(INT64_MAX))
    fail(what, "array too large: shape " + shape_str(h.shape));
  if (auto problem = memory_limit_problem(nbytes, what + " (" + dtype_name(h.dtype) + shape_str(h.shape) + ")"); !problem.empty())
    throw DataError(problem);
  const std::string_view payload = bytes.substr(preamble + header_len);
  // Shorter is truncation; longer is allowed, as np.load reads the first of several arrays
  // appended to one file.
  if (payload.size() < nbytes)
    fail(what, "truncated .npy data (" + dtype_name(h.dtype) + shape_str(h.shape) + " needs " + std::to_string(nbytes) +
                   " bytes of data, only " + std::to_string(payload.size()) + " present)");

  Tensor t(h.dtype, h.shape);
  if (nbytes == 0) return t;
  if (h.fortran_order && h.shape.size() > 1)
    with_word(h.itemsize, [&](auto w) { fortran_to_c<decltype(w)>(payload.data(), t.raw(), h.shape); });
  else
    std::memcpy(t.raw(), payload.data(), nbytes);
  if (h.byteswap) {
    with_word(h.itemsize, [&](auto w) {
      if constexpr (sizeof(w) > 1) byteswap_all<decltype(w)>(t.raw(), count);
    });
  }
  if (h.dtype == DType::Bool) {
    // Any nonzero byte is true to numpy; a C++ bool must hold exactly 0 or 1.
    auto* b = static_cast<unsigned char*>(t.raw());
    for (uint64_t i = 0; i < count; ++i) b[i] = b[i] != 0;
  }
  return t;
}

// ---- Writing --------------------------------------------------------------------------------

std::string descr_of(DType dtype) {
  for (const NumpyType& t : kNumpyTypes) {
    if (t.dtype != dtype) continue;
    // numpy spells the byte order of single-byte types '|' (not applicable).
    const char order = t.size == 1 ? '|' : kLittleHost ? '<' : '>';
    return std::string{order, t.kind} + std::to_string(t.size);
  }
  throw DataError("cannot save a " + dtype_name(dtype) + " tensor as .npy: NumPy has no such dtype");
}

// The preamble and header exactly as numpy writes them (format 1.0, or 2.0 when the header
// outgrows 64 KiB), so files we write are byte-identical to np.save's.
std::string npy_header(const Tensor& t) {
  std::string dict = "{'descr': '" + descr_of(t.dtype()) + "', 'fortran_order': False, 'shape': (";
  for (size_t i = 0; i < t.rank(); ++i) dict += (i ? ", " : "") + std::to_string(t.dim(i));
  dict += t.rank() == 1 ? ",), }" : "), }";
  if (t.rank() > 0) {
    const size_t digits = std::to_string(t.dim(0)).size();
    if (digits < kGrowthAxisDigits) dict.append(kGrowthAxisDigits - digits, ' ');
  }
  const size_t text_len = dict.size() + 1;  // + the final newline
  bool v2 = false;
  size_t pad = kArrayAlign - (kPreambleV1 + text_len) % kArrayAlign;
  if (text_len + pad > 0xFFFF) {
    v2 = true;
    pad = kArrayAlign - (kPreambleV2 + text_len) % kArrayAlign;
  }
  const size_t header_len = text_len + pad;
  std::string out(kMagic);
  out.push_back(static_cast<char>(v2 ? 2 : 1));
  out.push_back(0);
  for (int i = 0; i < (v2 ? 4 : 2); ++i) out.push_back(static_cast<char>((header_len >> (8 * i)) & 0xFF));
  out += dict;
  out.append(pad, ' ');
  out.push_back('\n');
  return out;
}

std::string_view tensor_bytes(const Tensor& t) {
  const size_t n = t.nbytes();
  return n ? std::string_view(static_cast<const char*>(t.raw()), n) : std::string_view();
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  auto fail_io = [&](const char* step) {
    const int err = errno;
    if (fd >= 0) ::close(fd);
    throw DataError("cannot " + std::string(step) + " '" + path + "': " + std::strerror(err));
  };
  if (fd < 0) fail_io("open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) fail_io("stat");
  if (S_ISDIR(st.st_mode)) {
    errno = EISDIR;
    fail_io("read");
  }
  std::string bytes;
  bytes.reserve(static_cast<size_t>(std::max<off_t>(st.st_size, 0)));
  char buf[1 << 16];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) fail_io("read");
    if (n == 0) break;
    bytes.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return bytes;
}

std::string quoted(const std::string& path) { return "'" + path + "'"; }

std::map<std::string, Tensor> parse_npz(std::string_view bytes, const std::string& what) {
  std::map<std::string, Tensor> arrays;
  std::string scratch;
  for (const zip::Member& m : zip::read_directory(bytes, what)) {
    if (!m.name.empty() && m.name.back() == '/') continue;  // directory entries carry no data
    const std::string mwhat = what + " member '" + m.name + "'";
    std::string name = m.name;
    if (name.size() >= 4 && name.compare(name.size() - 4, 4, ".npy") == 0) name.resize(name.size() - 4);
    if (arrays.count(name)) fail(mwhat, "a second member also holds array '" + name + "'");
    // Checked before inflating: a deflated member may claim a thousand times its size.
    if (auto problem = memory_limit_problem(m.uncompressed_size, mwhat); !problem.empty()) throw DataError(problem);
    arrays.emplace(name, parse_npy_bytes(zip::read_member(bytes, m, what, scratch), mwhat));
  }
  return arrays;
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& what) { return parse_npy_bytes(bytes, what); }

std::string serialize_npy(const Tensor& tensor) {
  std::string out = npy_header(tensor);
  out += tensor_bytes(tensor);
  return out;
}

Tensor read_npy(const std::string& path) { return parse_npy_bytes(read_file(path), quoted(path)); }

void write_npy(const std::string& path, const Tensor& tensor) { write_file_atomically(path, serialize_npy(tensor)); }

std::map<std::string, Tensor> read_npz(const std::string& path) { return parse_npz(read_file(path), quoted(path)); }

void write_npz(const std::string& path, const std::map<std::string, Tensor>& arrays, bool compress) {
  std::vector<std::string> headers;
  headers.reserve(arrays.size());
  std::vector<zip::Entry> entries;
  entries.reserve(arrays.size());
  for (const auto& [name, tensor] : arrays) {
    try {
      headers.push_back(npy_header(tensor));
    } catch (const DataError& e) {
      throw DataError("cannot write " + quoted(path) + ": array '" + name + "': " + e.what());
    }
    entries.push_back({name + ".npy", {headers.back(), tensor_bytes(tensor)}});
  }
  write_file_atomically(path, zip::write_archive(entries, compress));
}

std::map<std::string, Tensor> read_arrays(const std::string& path) {
  const std::string bytes = read_file(path);
  if (zip::looks_like_zip(bytes)) return parse_npz(bytes, quoted(path));
  if (bytes.compare(0, kMagic.size(), kMagic) == 0) {
    std::map<std::string, Tensor> arrays;
    arrays.emplace(std::filesystem::path(path).stem().string(), parse_npy_bytes(bytes, quoted(path)));
    return arrays;
  }
  fail(quoted(path), "neither an .npy file nor an .npz archive");
}

}  // namespace onnxtrain
