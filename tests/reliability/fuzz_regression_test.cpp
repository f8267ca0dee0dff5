// Replays every fuzz seed (fuzz/corpus/<target>) and every input a fuzz target once failed on
// (tests/data/fuzz_regressions/<target>) through the same reader functions the libFuzzer
// targets call, in the default build: each must end in a clean error or success.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "fuzz/fuzz_inputs.h"
#include "onnxtrain/log.h"

namespace fs = std::filesystem;

namespace {

fs::path source_dir() {
  const char* dir = std::getenv("ONNXTRAIN_SOURCE_DIR");
  return dir ? fs::path(dir) : fs::path(".");
}

std::vector<fs::path> inputs_of(const std::string& target) {
  std::vector<fs::path> files;
  for (const fs::path& dir : {source_dir() / "fuzz" / "corpus" / target, source_dir() / "tests" / "data" / "fuzz_regressions" / target})
    if (fs::is_directory(dir))
      for (const auto& entry : fs::directory_iterator(dir))
        if (entry.is_regular_file()) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

class FuzzReplay : public testing::TestWithParam<const char*> {};

TEST_P(FuzzReplay, EveryKnownInputEndsCleanly) {
  onnxtrain::set_log_level(onnxtrain::LogLevel::Off);
  onnxtrain::fuzz::limit_memory();
  const auto& target = onnxtrain::fuzz::target(GetParam());
  const auto files = inputs_of(GetParam());
  ASSERT_FALSE(files.empty()) << "no seeds for fuzz target " << GetParam() << " under " << source_dir();
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    std::ifstream in(file, std::ios::binary);
    std::stringstream bytes;
    bytes << in.rdbuf();
    EXPECT_NO_THROW(target.run(bytes.str()));
  }
}

std::vector<const char*> target_names() {
  std::vector<const char*> names;
  for (const auto& t : onnxtrain::fuzz::targets()) names.push_back(t.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Targets, FuzzReplay, testing::ValuesIn(target_names()),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
