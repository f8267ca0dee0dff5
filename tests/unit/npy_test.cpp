// .npy/.npz reading and writing. Fixtures come from tests/data/npy/make_fixtures.py (numpy);
// the expected values below are the formulas used there.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>

#include "onnxtrain/npy.h"
#include "src/zip_archive.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

using namespace onnxtrain;

namespace {

// ONNXTRAIN_SOURCE_DIR names the source tree, but ctest does not pass it on (the ENVIRONMENT
// property in tests/CMakeLists.txt lands among gtest_discover_tests' own arguments), so also
// look upwards from the working directory and the executable for the fixtures.
std::string fixture_dir() {
  namespace fs = std::filesystem;
  const fs::path rel = "tests/data/npy";
  std::vector<fs::path> starts = {test::source_dir(), fs::current_path()};
  std::error_code ec;
  if (fs::path exe = fs::read_symlink("/proc/self/exe", ec); !ec) starts.push_back(exe.parent_path());
  for (fs::path dir : starts) {
    for (dir = fs::absolute(dir, ec); !dir.empty(); dir = dir.parent_path()) {
      if (fs::exists(dir / rel / "make_fixtures.py", ec)) return (dir / rel).string();
      if (dir == dir.parent_path()) break;
    }
  }
  return (fs::path(test::source_dir()) / rel).string();
}

std::string fixture(const std::string& name) {
  static const std::string dir = fixture_dir();
  return dir + "/" + name;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("missing fixture " + path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void spit(const std::string& path, std::string_view bytes) {
  // A new file rather than a truncated one: ext4 flushes files truncated and rewritten, which
  // would make the thousands of writes below take seconds.
  std::filesystem::remove(path);
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

class NpyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (std::filesystem::temp_directory_path() / "npy_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string temp(const std::string& name) const { return dir_ + "/" + name; }

  std::string dir_;
};

bool bit_equal(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

std::vector<uint16_t> half_bits(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DType::Float16);
  std::vector<uint16_t> bits(t.numel());
  if (!bits.empty()) std::memcpy(bits.data(), t.raw(), t.nbytes());
  return bits;
}

using test::error_of;

// A version 1.0 .npy with `header` as its dictionary text, unpadded.
std::string make_npy(const std::string& header, std::string_view data) {
  std::string out("\x93NUMPY\x01\x00", 8);
  out.push_back(static_cast<char>(header.size() & 0xFF));
  out.push_back(static_cast<char>(header.size() >> 8));
  return out + header + std::string(data);
}

// What read_npz does, on bytes in memory.
void read_archive(std::string_view bytes) {
  std::string scratch;
  for (const zip::Member& m : zip::read_directory(bytes, "x.npz"))
    parse_npy(std::string(zip::read_member(bytes, m, "x.npz", scratch)), m.name);
}

template <typename T>
std::string_view raw_of(const std::vector<T>& v) {
  return {reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T)};
}

template <typename T>
void expect_values(const std::string& file, const Shape& shape, const std::vector<T>& values) {
  SCOPED_TRACE(file);
  Tensor t = read_npy(fixture(file));
  EXPECT_EQ(t.dtype(), dtype_of<T>());
  EXPECT_EQ(t.shape(), shape);
  EXPECT_EQ(t.to_vector<T>(), values);
}

constexpr float kInf = std::numeric_limits<float>::infinity();
const std::vector<float> kFloats = {-1.5f, 0.f, 0.25f, 3.f, kInf, -kInf};
const std::vector<uint16_t> kHalfBits = {0xBE00, 0x0000, 0x3400, 0x4200, 0x7C00, 0xFC00};

template <typename T>
std::vector<T> signed_pattern() {
  return {std::numeric_limits<T>::min(), -1, 0, 1, 42, std::numeric_limits<T>::max()};
}
template <typename T>
std::vector<T> unsigned_pattern() {
  return {0, 1, 2, 42, 255, std::numeric_limits<T>::max()};
}

}  // namespace

TEST_F(NpyTest, ReadsEveryDtype) {
  expect_values<int8_t>("i1.npy", {2, 3}, signed_pattern<int8_t>());
  expect_values<int16_t>("i2.npy", {2, 3}, signed_pattern<int16_t>());
  expect_values<int32_t>("i4.npy", {2, 3}, signed_pattern<int32_t>());
  expect_values<int64_t>("i8.npy", {2, 3}, signed_pattern<int64_t>());
  expect_values<uint8_t>("u1.npy", {2, 3}, unsigned_pattern<uint8_t>());
  expect_values<uint16_t>("u2.npy", {2, 3}, unsigned_pattern<uint16_t>());
  expect_values<uint32_t>("u4.npy", {2, 3}, unsigned_pattern<uint32_t>());
  expect_values<uint64_t>("u8.npy", {2, 3}, unsigned_pattern<uint64_t>());
  expect_values<float>("f4.npy", {2, 3}, kFloats);
  expect_values<double>("f8.npy", {2, 3}, {-1.5, 0, 0.25, 3, HUGE_VAL, -HUGE_VAL});
  expect_values<bool>("b1.npy", {2, 3}, {true, false, true, false, false, true});
  Tensor half = read_npy(fixture("f2.npy"));
  EXPECT_EQ(half.shape(), (Shape{2, 3}));
  EXPECT_EQ(half_bits(half), kHalfBits);
}

TEST_F(NpyTest, SwapsBigEndianArrays) {
  expect_values<float>("be_f4.npy", {2, 3}, kFloats);
  expect_values<int64_t>("be_i8.npy", {2, 3}, {-2, -1, 0, 1, 2, int64_t{1} << 40});
  expect_values<uint16_t>("be_u2.npy", {4}, {1, 2, 258, 65535});
  EXPECT_EQ(half_bits(read_npy(fixture("be_f2.npy"))), kHalfBits);
}

TEST_F(NpyTest, ConvertsFortranOrderToCOrder) {
  std::vector<float> iota(24);
  for (size_t i = 0; i < iota.size(); ++i) iota[i] = static_cast<float>(i);
  expect_values<float>("fortran_f4.npy", {2, 3, 4}, iota);
  expect_values<int16_t>("fortran_i2.npy", {2, 3}, {0, 1, 2, 3, 4, 5});
  expect_values<int32_t>("fortran_1d.npy", {5}, {0, 1, 2, 3, 4});
}

TEST_F(NpyTest, ReadsScalarsAndEmptyArrays) {
  expect_values<double>("scalar_f8.npy", {}, {3.5});
  expect_values<float>("empty_f4.npy", {0}, {});
  expect_values<int64_t>("empty_2x0x3_i8.npy", {2, 0, 3}, {});
}

TEST_F(NpyTest, ReadsFormatVersionsAndNativeByteOrderMarkers) {
  expect_values<float>("v2_f4.npy", {2, 3}, kFloats);
  expect_values<float>("v3_f4.npy", {2, 3}, kFloats);
  expect_values<float>("native_eq_f4.npy", {2, 3}, kFloats);
  expect_values<uint16_t>("native_bar_u2.npy", {4}, {1, 2, 258, 65535});
}

TEST_F(NpyTest, ParsesHeaderSpellingVariants) {
  const std::vector<float> v = {1, 2, 3, 4, 5, 6};
  for (const std::string header : {
           "{'descr':'<f4','fortran_order':False,'shape':(2,3)}",
           "{ \"shape\" : ( 2 , 3 , ) , \"descr\" : \"<f4\" ,\t\"fortran_order\" : False , }   \n",
           "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
           "{u'descr': u'<f4', 'fortran_order': False, 'shape': (2, 3), }",
       }) {
    SCOPED_TRACE(header);
    Tensor t = parse_npy(make_npy(header, raw_of(v)));
    EXPECT_EQ(t.shape(), (Shape{2, 3}));
    EXPECT_EQ(t.to_vector<float>(), v);
  }
  // "(6)" is an integer in Python, "(6,)" a tuple.
  EXPECT_EQ(parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6,)}", raw_of(v))).shape(),
            Shape{6});
  EXPECT_CONTAINS(
      error_of([&] { parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (6)}", raw_of(v))); }),
      "'shape' is not a tuple");
  // Any nonzero byte is true to numpy.
  Tensor b =
      parse_npy(make_npy("{'descr': '|b1', 'fortran_order': False, 'shape': (3,)}", std::string("\x00\x02\xff", 3)));
  EXPECT_EQ(b.to_vector<bool>(), (std::vector<bool>{false, true, true}));
  // Data after the array is ignored, as np.load does with several arrays appended to a file.
  EXPECT_EQ(
      parse_npy(make_npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)}", raw_of(v))).to_vector<float>(),
      (std::vector<float>{1, 2}));
}

TEST_F(NpyTest, WritesExactlyWhatNumpyWrites) {
  for (const char* name :
       {"i1.npy", "i2.npy", "i4.npy", "i8.npy", "u1.npy", "u2.npy", "u4.npy", "u8.npy", "f2.npy", "f4.npy", "f8.npy",
        "b1.npy", "scalar_f8.npy", "empty_f4.npy", "empty_2x0x3_i8.npy", "fortran_1d.npy"}) {
    SCOPED_TRACE(name);
    const std::string bytes = slurp(fixture(name));
    EXPECT_EQ(serialize_npy(parse_npy(bytes)), bytes);
  }
  // Fortran-order and big-endian input is written back as little-endian C order.
  EXPECT_EQ(serialize_npy(read_npy(fixture("be_f4.npy"))), slurp(fixture("f4.npy")));
}

TEST_F(NpyTest, RoundTripsNpyBitIdentically) {
  std::vector<Tensor> tensors = {
      Tensor::from_vector<float>({2, 2}, {std::nanf("0x123"), -0.f, 1e-45f, -kInf}),
      Tensor::from_vector<double>({3}, {std::nan("7"), -0.0, 5e-324}),
      Tensor::from_vector<int64_t>({}, {std::numeric_limits<int64_t>::min()}),
      Tensor::from_vector<uint64_t>({1, 1, 2}, {0, std::numeric_limits<uint64_t>::max()}),
      Tensor::from_vector<int32_t>({0, 4}, {}),
      Tensor::from_vector<int16_t>({2}, {-7, 7}),
      Tensor::from_vector<int8_t>({2}, {-128, 127}),
      Tensor::from_vector<uint8_t>({3}, {0, 128, 255}),
      Tensor::from_vector<uint16_t>({1}, {65535}),
      Tensor::from_vector<uint32_t>({1}, {4000000000u}),
      Tensor::from_vector<bool>({2}, {true, false}),
      read_npy(fixture("f2.npy")),
  };
  for (const Tensor& t : tensors) {
    SCOPED_TRACE(dtype_name(t.dtype()) + shape_str(t.shape()));
    write_npy(temp("t.npy"), t);
    EXPECT_TRUE(bit_equal(read_npy(temp("t.npy")), t));
    EXPECT_EQ(serialize_npy(t).size() % 64, t.nbytes() % 64);  // data starts 64-byte aligned
  }
  auto arrays = read_arrays(temp("t.npy"));
  ASSERT_EQ(arrays.size(), 1u);
  EXPECT_EQ(arrays.begin()->first, "t");
  // A header past 64 KiB needs format 2.0.
  Tensor wide(DType::Float, Shape(30000, 1));
  const std::string big = serialize_npy(wide);
  EXPECT_EQ(big[6], 2);
  EXPECT_TRUE(bit_equal(parse_npy(big), wide));
  EXPECT_CONTAINS(error_of([] { serialize_npy(Tensor(DType::BFloat16, {1})); }), "bfloat16");
}

TEST_F(NpyTest, ReadsNpzStoredAndCompressed) {
  const auto stored = read_npz(fixture("stored.npz"));
  const auto compressed = read_npz(fixture("compressed.npz"));
  for (const auto& [file, method] : {std::pair{"stored.npz", 0}, std::pair{"compressed.npz", 8}}) {
    for (const zip::Member& m : zip::read_directory(slurp(fixture(file)), file)) EXPECT_EQ(m.method, method) << file;
  }
  ASSERT_EQ(stored.size(), 6u);
  ASSERT_EQ(compressed.size(), 6u);
  for (const auto& [name, t] : stored) {
    ASSERT_TRUE(compressed.count(name)) << name;
    EXPECT_TRUE(bit_equal(t, compressed.at(name))) << name;
  }
  std::vector<float> weights(12);
  for (int i = 0; i < 12; ++i) weights[i] = i / 4.f;
  EXPECT_EQ(stored.at("weights").shape(), (Shape{3, 4}));
  EXPECT_EQ(stored.at("weights").to_vector<float>(), weights);
  EXPECT_EQ(stored.at("bias").to_vector<double>(), (std::vector<double>{-1, 0.5, 2}));
  EXPECT_EQ(stored.at("steps").shape(), Shape{});
  EXPECT_EQ(stored.at("steps").to_vector<int64_t>(), std::vector<int64_t>{7});
  EXPECT_EQ(stored.at("mask").to_vector<bool>(), (std::vector<bool>{true, false, true, true}));
  EXPECT_EQ(stored.at("nested/name").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 2, 3, 4}));
  EXPECT_EQ(stored.at("empty").dtype(), DType::Float16);
  EXPECT_EQ(stored.at("empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(read_arrays(fixture("compressed.npz")).size(), 6u);
}

TEST_F(NpyTest, ReadsZip64ArchiveFromNumpy) {
  const auto arrays = read_npz(fixture("zip64.npz"));
  ASSERT_EQ(arrays.size(), 2u);
  EXPECT_EQ(arrays.at("a").shape(), (Shape{3, 4}));
  EXPECT_EQ(arrays.at("a").to_vector<float>()[11], 11 / 4.f);
  EXPECT_EQ(arrays.at("b").to_vector<double>(), (std::vector<double>{-1, 0.5, 2}));
}

TEST_F(NpyTest, RoundTripsNpzBitIdentically) {
  std::mt19937 rng(42);
  std::vector<float> noise(100000);
  for (float& x : noise) x = std::uniform_real_distribution<float>(-1, 1)(rng);
  std::map<std::string, Tensor> arrays = {
      {"noise", Tensor::from_vector<float>({100, 1000}, noise)},
      {"zeros", Tensor(DType::Double, {1 << 17})},  // compresses ~1000:1
      {"scalar", Tensor::scalar<int64_t>(-3)},
      {"empty", Tensor(DType::UInt8, {0})},
      {"flags", Tensor::from_vector<bool>({3}, {false, true, true})},
      {"half", read_npy(fixture("f2.npy"))},
      {"dir/x", Tensor::from_vector<int32_t>({2}, {1, 2})},
  };
  for (bool compress : {false, true}) {
    SCOPED_TRACE(compress ? "deflate" : "stored");
    write_npz(temp("a.npz"), arrays, compress);
    const auto back = read_npz(temp("a.npz"));
    ASSERT_EQ(back.size(), arrays.size());
    for (const auto& [name, t] : arrays) EXPECT_TRUE(bit_equal(back.at(name), t)) << name;
    for (const zip::Member& m : zip::read_directory(slurp(temp("a.npz")), "a.npz"))
      EXPECT_EQ(m.method, compress ? 8 : 0);
  }
  // zip64 records everywhere (they are otherwise written only past 4 GiB).
  std::vector<std::string> headers;
  std::vector<zip::Entry> entries;
  for (const auto& [name, t] : arrays) {
    headers.push_back(serialize_npy(t));
    entries.push_back({name + ".npy", {headers.back()}});
  }
  for (bool compress : {false, true}) {
    const std::string archive = zip::write_archive(entries, compress, /*force_zip64=*/true);
    EXPECT_NE(archive.find(std::string("PK\x06\x06", 4)), std::string::npos);
    spit(temp("z.npz"), archive);
    const auto back = read_npz(temp("z.npz"));
    for (const auto& [name, t] : arrays) EXPECT_TRUE(bit_equal(back.at(name), t)) << name;
  }
}

TEST_F(NpyTest, ErrorsNameTheFileAndTheProblem) {
  const std::string f4 = fixture("f4.npy");
  EXPECT_CONTAINS(error_of([&] { read_npz(f4); }), "'" + f4 + "': not a zip archive");
  EXPECT_CONTAINS(error_of([&] { read_npy(fixture("stored.npz")); }), "not .npy data");
  EXPECT_CONTAINS(error_of([&] { read_npy(temp("missing.npy")); }), "No such file");
  spit(temp("notes.txt"), "hello");
  EXPECT_CONTAINS(error_of([&] { read_arrays(temp("notes.txt")); }), "neither an .npy file nor an .npz archive");

  const std::string complex_err = error_of([] { read_npy(fixture("complex_c8.npy")); });
  EXPECT_CONTAINS(complex_err, "complex_c8.npy'");
  EXPECT_CONTAINS(complex_err, "unsupported dtype '<c8' (complex numbers)");
  EXPECT_CONTAINS(error_of([] { read_npy(fixture("object.npy")); }), "unsupported dtype '|O' (object arrays");

  std::string too_long("\x93NUMPY\x02\x00\xff\xff\xff\x7f{}", 14);
  EXPECT_CONTAINS(error_of([&] { parse_npy(too_long, "x.npy"); }), "x.npy: .npy header too long");
  const std::string data(24, '\0');
  const std::vector<std::pair<std::string, std::string>> bad_headers = {
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3}", "garbled .npy header"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), ", "garbled .npy header (unexpected end"},
      {"{'descr': '<f4' 'fortran_order': False, 'shape': (2, 3)}", "garbled .npy header (expected ','"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3)} x", "unexpected text after the dictionary"},
      {"['descr', '<f4']", "not a dictionary"},
      {"{'descr': '<f4', 'shape': (2, 3)}", "lacks 'descr', 'fortran_order' or 'shape'"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), 'extra': 1}",
       "unexpected key in .npy header 'extra'"},
      {"{'descr': '<f4', 'fortran_order': 0, 'shape': (2, 3)}", "'fortran_order' is not True or False"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -3)}", "invalid .npy shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", "invalid .npy shape"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}", "array too large"},
      {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4)}", "needs 32 bytes of data, only 24 present"},
      {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", "structured dtypes"},
      {"{'descr': '<f16', 'fortran_order': False, 'shape': (1,)}", "unsupported dtype '<f16'"},
      {"{'descr': '<U3', 'fortran_order': False, 'shape': (1,)}", "(strings)"},
      {"{'descr': '<M8[s]', 'fortran_order': False, 'shape': (1,)}", "(datetime/timedelta)"},
      {std::string(100, '('), "nesting too deep"},
  };
  for (const auto& bad : bad_headers) {
    const std::string err = error_of([&] { parse_npy(make_npy(bad.first, data), "t.npy"); });
    EXPECT_CONTAINS(err, "t.npy: ");
    EXPECT_CONTAINS(err, bad.second);
  }
  std::string v4 = make_npy("{}", "");
  v4[6] = 4;
  EXPECT_CONTAINS(error_of([&] { parse_npy(v4); }), "unsupported .npy format version 4.0");

  // Archive-level problems name the member.
  std::string text = "not an array";
  spit(temp("odd.npz"), zip::write_archive({{"notes.txt", {text}}}, false));
  EXPECT_CONTAINS(error_of([&] { read_npz(temp("odd.npz")); }), "odd.npz' member 'notes.txt': not .npy data");
  const std::string npy = slurp(f4);
  spit(temp("dup.npz"), zip::write_archive({{"a.npy", {npy}}, {"a.npy", {npy}}}, true));
  EXPECT_CONTAINS(error_of([&] { read_npz(temp("dup.npz")); }), "member 'a.npy': appears twice");
  spit(temp("dup2.npz"), zip::write_archive({{"a", {npy}}, {"a.npy", {npy}}}, true));
  EXPECT_CONTAINS(error_of([&] { read_npz(temp("dup2.npz")); }), "a second member also holds array 'a'");
}

TEST_F(NpyTest, DetectsCorruptedMembers) {
  for (const char* file : {"stored.npz", "compressed.npz"}) {
    SCOPED_TRACE(file);
    const std::string good = slurp(fixture(file));
    const auto members = zip::read_directory(good, file);
    const zip::Member& m = members.at(1);
    const size_t data_at = m.local_header_offset + 30 + static_cast<unsigned char>(good[m.local_header_offset + 26]) +
                           static_cast<unsigned char>(good[m.local_header_offset + 28]);
    std::string bad = good;
    bad[data_at + m.compressed_size - 1] ^= 0x01;  // the last data byte: only the CRC can tell
    spit(temp("bad.npz"), bad);
    const std::string err = error_of([&] { read_npz(temp("bad.npz")); });
    EXPECT_CONTAINS(err, temp("bad.npz") + "' member '" + m.name + "': ");
    if (m.method == 0) {
      EXPECT_CONTAINS(err, "CRC-32 mismatch");
    }

    bad = good.substr(0, good.size() / 2);
    spit(temp("half.npz"), bad);
    EXPECT_CONTAINS(error_of([&] { read_npz(temp("half.npz")); }), "truncated zip archive");
  }
}

// Every truncation and many single-byte corruptions of good files must end in a DataError or
// a successful read, never a crash, a hang or another exception (run under ASan/UBSan too).
TEST_F(NpyTest, SurvivesTruncatedAndCorruptedFiles) {
  for (const char* file : {"f8.npy", "fortran_f4.npy", "be_i8.npy"}) {
    const std::string good = slurp(fixture(file));
    for (size_t n = 0; n < good.size(); ++n)
      EXPECT_CONTAINS(error_of([&] { parse_npy(good.substr(0, n), file); }), "truncated") << file << " cut at " << n;
    for (size_t i = 0; i < good.size(); ++i) {
      for (unsigned char flip : {0x01, 0x80, 0xFF}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ flip);
        try {
          parse_npy(bad, file);
        } catch (const DataError&) {
        }
      }
    }
  }
  for (const char* file : {"stored.npz", "compressed.npz", "zip64.npz"}) {
    SCOPED_TRACE(file);
    const std::string good = slurp(fixture(file));
    // Through files for a sample of lengths (file I/O is the slow part), in memory for all.
    const std::string path = temp(file);
    for (size_t n = 0; n < good.size(); n += 7) {
      spit(path, good.substr(0, n));
      EXPECT_CONTAINS(error_of([&] { read_npz(path); }), path) << file << " cut at " << n;
    }
    for (size_t n = 0; n < good.size(); ++n) EXPECT_FALSE(error_of([&] { read_archive(good.substr(0, n)); }).empty());
    for (size_t i = 0; i < good.size(); ++i) {
      for (unsigned char flip : {0x01, 0x80, 0xFF}) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ flip);
        try {
          read_archive(bad);
        } catch (const DataError&) {
        }
      }
    }
  }
}
