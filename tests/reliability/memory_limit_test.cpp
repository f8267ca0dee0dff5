// Files whose headers claim more memory than the limit are refused before allocating, with
// the tensor's name and size in the message.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace onnxtrain;

namespace {

// Restores the default limit after each test.
class MemoryLimit : public testing::Test {
 protected:
  void TearDown() override {
    set_memory_limit(0);
    unsetenv("ONNXTRAIN_MEMORY_LIMIT");
  }
  fs::path dir() {
    fs::path d = fs::temp_directory_path() / ("onnxtrain-memlimit-" + std::to_string(getpid()));
    fs::create_directories(d);
    return d;
  }
};

// A .npy header for float32 `shape` followed by `payload_bytes` bytes.
std::string npy_bytes(const std::string& shape, size_t payload_bytes) {
  std::string dict = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  dict.resize((10 + dict.size() + 1 + 63) / 64 * 64 - 10 - 1, ' ');
  dict += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>(dict.size() >> 8);
  return out + dict + std::string(payload_bytes, '\0');
}

TEST_F(MemoryLimit, DefaultsToPhysicalRamAndReadsTheEnvironment) {
  EXPECT_GT(memory_limit(), uint64_t{1} << 26);
  setenv("ONNXTRAIN_MEMORY_LIMIT", "3M", 1);
  EXPECT_EQ(memory_limit(), uint64_t{3} << 20);
  setenv("ONNXTRAIN_MEMORY_LIMIT", "12345", 1);
  EXPECT_EQ(memory_limit(), 12345u);
  setenv("ONNXTRAIN_MEMORY_LIMIT", "lots", 1);
  EXPECT_THROW(memory_limit(), DataError);
  set_memory_limit(1000);
  EXPECT_EQ(memory_limit(), 1000u);
}

TEST_F(MemoryLimit, NpyHeaderClaimingAHugeArrayIsRefusedWithItsSize) {
  try {
    parse_npy(npy_bytes("(1000000, 1000000)", 16), "'huge.npy'");
    FAIL() << "no error";
  } catch (const DataError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'huge.npy'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("4000000000000 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("memory limit"), std::string::npos) << msg;
  }
}

TEST_F(MemoryLimit, ALowerLimitRefusesAnArrayThatIsPresent) {
  const std::string bytes = npy_bytes("(1024,)", 4096);
  EXPECT_EQ(parse_npy(bytes).numel(), 1024);
  setenv("ONNXTRAIN_MEMORY_LIMIT", "4000", 1);
  EXPECT_THROW(parse_npy(bytes), DataError);
}

// An initializer claiming 2^38 floats (1 TiB) in a 48-byte external data file beside the
// model: refused by name and size before anything is read or allocated.
TEST_F(MemoryLimit, ModelWithAHugeExternalInitializerIsRefused) {
  onnx::ModelProto proto;
  proto.ParseFromString(Model::from_text(test::kLinearModel).serialize());
  onnx::TensorProto* w = proto.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->clear_raw_data();
  w->clear_dims();
  w->add_dims(int64_t{1} << 19);
  w->add_dims(int64_t{1} << 19);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* location = w->add_external_data();
  location->set_key("location");
  location->set_value("weights.bin");
  const fs::path d = dir();
  std::ofstream(d / "weights.bin", std::ios::binary) << std::string(48, '\0');
  std::ofstream(d / "huge.onnx", std::ios::binary) << proto.SerializeAsString();
  try {
    Model::load((d / "huge.onnx").string());
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("'" + w->name() + "'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("1099511627776 bytes"), std::string::npos) << msg;
    EXPECT_NE(msg.find("memory limit"), std::string::npos) << msg;
  }
  fs::remove_all(d);
}

// External data must stay inside the model's directory, also through symbolic links, and a
// model read from memory has no directory to take it from.
TEST_F(MemoryLimit, ExternalDataOutsideTheModelDirectoryIsRefused) {
  const fs::path d = dir();
  fs::create_directories(d / "model");
  std::ofstream(d / "secret.bin", std::ios::binary) << std::string(48, 's');
  fs::create_symlink(d / "secret.bin", d / "model" / "link.bin");
  onnx::ModelProto proto;
  proto.ParseFromString(Model::from_text(test::kLinearModel).serialize());
  onnx::TensorProto* w = proto.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->clear_raw_data();
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* location = w->add_external_data();
  location->set_key("location");
  location->set_value("link.bin");
  const std::string bytes = proto.SerializeAsString();
  std::ofstream(d / "model" / "m.onnx", std::ios::binary) << bytes;
  EXPECT_THROW(
      {
        try {
          Model::load((d / "model" / "m.onnx").string());
        } catch (const ModelError& e) {
          EXPECT_NE(std::string(e.what()).find("outside the model's directory"), std::string::npos) << e.what();
          throw;
        }
      },
      ModelError);
  EXPECT_THROW(Model::from_bytes(bytes.data(), bytes.size()), ModelError);
  fs::remove_all(d);
}

}  // namespace
