// Runs the ONNX backend test data (Debian libonnx-testdata) through onnxtrain:
// load model.onnx, feed test_data_set_*/input_*.pb, compare with output_*.pb at the ONNX
// tolerances (rtol 1e-3, atol 1e-7). allowlist.txt records the expected result of every
// test in the data: a plain line expects a pass, "- folder/test: reason" excludes it.
//
//   onnx_backend_tests --folder node --data DIR --lists DIR [--discover] [--only NAME]
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

namespace fs = std::filesystem;
using namespace onnxtrain;

namespace {

struct Lists {
  std::set<std::string> expected_pass;
  std::map<std::string, std::string> excluded;  // test -> reason
};

Lists read_lists(const fs::path& file) {
  Lists lists;
  std::ifstream in(file);
  if (!in) throw std::runtime_error("cannot read " + file.string());
  std::string line;
  while (std::getline(in, line)) {
    line.erase(line.find_last_not_of(" \t\r") + 1);
    if (line.empty() || line[0] == '#') continue;
    if (line[0] == '-') {
      auto colon = line.find(':');
      std::string name = line.substr(1, colon == std::string::npos ? std::string::npos : colon - 1);
      name.erase(0, name.find_first_not_of(' '));
      name.erase(name.find_last_not_of(' ') + 1);
      std::string reason = colon == std::string::npos ? "" : line.substr(colon + 1);
      if (reason.find_first_not_of(' ') == std::string::npos)
        throw std::runtime_error(file.string() + ": exclusion of " + name + " has no reason");
      lists.excluded[name] = reason;
    } else {
      lists.expected_pass.insert(line);
    }
  }
  return lists;
}

std::vector<fs::path> sorted_files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0) files.push_back(e.path());
  // input_10.pb sorts after input_9.pb
  std::sort(files.begin(), files.end(), [](const fs::path& a, const fs::path& b) {
    auto num = [](const fs::path& p) {
      std::string s = p.stem().string();
      return std::stoi(s.substr(s.find('_') + 1));
    };
    return num(a) < num(b);
  });
  return files;
}

// Empty string on success, otherwise what went wrong.
std::string run_case(const fs::path& dir) {
  try {
    Model model = Model::load((dir / "model.onnx").string());
    InferenceSession session(model);
    auto inputs = model.inputs();
    auto outputs = model.outputs();
    std::vector<fs::path> sets;
    for (const auto& e : fs::directory_iterator(dir))
      if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) sets.push_back(e.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) return "no test_data_set";
    for (const auto& set : sets) {
      std::map<std::string, Tensor> feeds;
      auto input_files = sorted_files(set, "input_");
      for (size_t i = 0; i < input_files.size(); ++i) {
        std::string name;
        Tensor t = test::read_tensor_proto_file(input_files[i].string(), &name);
        if (name.empty()) {
          if (i >= inputs.size()) return "more input files than model inputs";
          name = inputs[i].name;
        }
        feeds[name] = t;
      }
      std::vector<std::string> fetch;
      for (const auto& o : outputs) fetch.push_back(o.name);
      auto result = session.run(feeds, fetch);
      auto output_files = sorted_files(set, "output_");
      if (output_files.size() != outputs.size())
        return std::to_string(output_files.size()) + " expected outputs for " + std::to_string(outputs.size()) + " model outputs";
      for (size_t i = 0; i < output_files.size(); ++i) {
        Tensor expected = test::read_tensor_proto_file(output_files[i].string());
        std::string diff = test::compare_tensors(result[outputs[i].name], expected);
        if (!diff.empty()) return set.filename().string() + " output '" + outputs[i].name + "': " + diff;
      }
    }
    return {};
  } catch (const std::exception& e) {
    std::string msg = e.what();
    return msg.empty() ? "exception" : msg;
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string folder = "node", data = "/usr/share/libonnx-testdata/data", lists_dir = ".", only;
  bool discover = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--folder") folder = next();
    else if (a == "--data") data = next();
    else if (a == "--lists") lists_dir = next();
    else if (a == "--only") only = next();
    else if (a == "--discover") discover = true;
    else {
      std::cerr << "unknown argument " << a << "\n";
      return 2;
    }
  }
  spdlog::set_level(spdlog::level::err);
  Lists lists;
  try {
    lists = read_lists(fs::path(lists_dir) / "allowlist.txt");
  } catch (const std::exception& e) {
    std::cerr << e.what() << "\n";
    return 2;
  }
  fs::path root = fs::path(data) / folder;
  if (!fs::is_directory(root)) {
    std::cerr << "no ONNX backend test data at " << root << " (install Debian's libonnx-testdata)\n";
    return 2;
  }
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / "model.onnx")) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());

  int passed = 0, failed = 0, excluded = 0, unreviewed = 0, newly_passing = 0;
  for (const auto& dir : cases) {
    std::string key = folder + "/" + dir.filename().string();
    if (!only.empty() && dir.filename().string() != only && key != only) continue;
    bool is_excluded = lists.excluded.count(key) != 0;
    bool expected = lists.expected_pass.count(key) != 0;
    if (!is_excluded && !expected) {
      std::cout << "UNREVIEWED " << key << " (add it to allowlist.txt as expected or excluded with a reason)\n";
      ++unreviewed;
    }
    if (is_excluded && !discover && only.empty()) {
      ++excluded;
      continue;
    }
    auto start = std::chrono::steady_clock::now();
    std::string error = run_case(dir);
    double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    if (error.empty()) {
      ++passed;
      if (discover) std::cout << "PASS " << key << "\n";
      if (is_excluded) {
        ++newly_passing;
        std::cout << "NOW PASSES (excluded: " << lists.excluded[key] << ") " << key << "\n";
      }
      if (ms > 2000) std::cout << "SLOW " << key << " " << ms << " ms\n";
    } else {
      ++failed;
      std::string first_line = error.substr(0, error.find('\n'));
      std::cout << (expected ? "FAIL " : "fail ") << key << ": " << first_line << "\n";
    }
  }
  int total = static_cast<int>(cases.size());
  std::cout << folder << ": " << passed << " passed, " << failed << " failed, " << excluded
            << " excluded, of " << total << " tests\n";
  if (discover || !only.empty()) return 0;
  return (failed || unreviewed) ? 1 : 0;
}
