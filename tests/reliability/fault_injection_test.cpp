// `onnxtrain train` under faults: killed with SIGKILL at many points while it writes
// checkpoints, best/last models and metrics; on a full disk; and several runs racing for
// the same runs/train/. The faults come from an LD_PRELOAD shim (fault_shim.cpp) around
// libc's write paths, so the code under test is the shipped binary, unchanged.
#include <gtest/gtest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/test_support.h"

extern char** environ;

namespace fs = std::filesystem;
using namespace onnxtrain;

namespace {

std::string read_text(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

struct Outcome {
  int status = 0;
  std::string err;
  bool killed() const { return WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL; }
  int exit_code() const { return WIFEXITED(status) ? WEXITSTATUS(status) : -1; }
};

// Runs the CLI in `cwd` with `env` added to ours; stdout is discarded, stderr captured.
Outcome run_cli(const fs::path& cwd, const std::vector<std::string>& args, const std::vector<std::string>& env = {}) {
  std::vector<std::string> all_env = env;
  for (char** e = environ; *e; ++e) all_env.push_back(*e);
  // A sanitizer build's runtime must otherwise come first in the library list.
  all_env.push_back("ASAN_OPTIONS=verify_asan_link_order=0:detect_leaks=0");
  const fs::path err_path = cwd / ("stderr" + std::to_string(getpid()) + ".txt");
  std::vector<std::string> argv_s = {ONNXTRAIN_CLI};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv, envp;
  for (auto& a : argv_s) argv.push_back(a.data());
  for (auto& e : all_env) envp.push_back(e.data());
  argv.push_back(nullptr);
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = 0;
  Outcome out;
  if (posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data()) != 0) {
    ADD_FAILURE() << "cannot start " << argv[0];
    out.status = -1;
    return out;
  }
  posix_spawn_file_actions_destroy(&actions);
  waitpid(pid, &out.status, 0);
  out.err = read_text(err_path);
  fs::remove(err_path);
  return out;
}

// The trained values of a model file, by initializer name, as raw bytes.
std::map<std::string, std::string> weights(const fs::path& model_path) {
  Model m = Model::load(model_path.string());
  std::map<std::string, std::string> out;
  for (const auto& name : m.initializer_names()) {
    Tensor t = m.initializer(name);
    out[name] = std::string(static_cast<const char*>(t.raw()), t.nbytes());
  }
  return out;
}

class FaultInjection : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("onnxtrain-faults-" + std::to_string(getpid()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    Model::from_text(test::kLinearModel).save((dir_ / "linear.onnx").string());
    std::ofstream csv(dir_ / "data.csv");
    for (int i = 0; i < 6; ++i) csv << i % 3 << "," << (i * 7) % 5 << "," << i - 2 << "," << 1 + i % 2 << "," << i % 3 << "\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // 3 epochs of 3 steps: three checkpoints, best/last models and metrics rows in between.
  std::vector<std::string> train_args(const std::string& run_dir) const {
    return {"train", "linear.onnx", "--data", "data.csv", "--epochs", "3", "--batch-size", "2", "--threads", "1",
            "--seed", "7", "--run-dir", run_dir, "-q"};
  }

  // Files under their final names are complete: models and checkpoints load, every metrics
  // row has every column.
  void expect_no_partial_files(const fs::path& run) {
    for (const auto& entry : fs::directory_iterator(run)) {
      const fs::path p = entry.path();
      const std::string name = p.filename().string();
      if (name.find(".tmp") != std::string::npos) continue;  // a temporary the kill left behind
      SCOPED_TRACE(p.string());
      if (p.extension() == ".onnx") {
        EXPECT_NO_THROW(Model::load(p.string()));
      } else if (p.extension() == ".npz") {
        EXPECT_NO_THROW(read_npz(p.string()));
      } else if (name == "metrics.csv") {
        const std::string text = read_text(p);
        EXPECT_TRUE(text.empty() || text.back() == '\n') << "torn last row";
        std::istringstream lines(text);
        std::string line;
        std::optional<size_t> commas;
        while (std::getline(lines, line)) {
          const size_t c = static_cast<size_t>(std::count(line.begin(), line.end(), ','));
          if (commas) {
            EXPECT_EQ(c, *commas) << line;
          }
          commas = c;
        }
      } else {
        EXPECT_GT(fs::file_size(p), 0u);
      }
    }
  }

  // Resumes `run` from its checkpoint (or trains it afresh when none was written) and checks
  // the result against the uninterrupted run: the same weights bit for bit, the same metrics.
  void expect_resume_reproduces(const fs::path& run, const std::string& tag) {
    std::vector<std::string> args = train_args(run.filename().string());
    if (fs::exists(run / "checkpoint.npz")) {
      args.push_back("--resume");
      args.push_back((run.filename() / "checkpoint.npz").string());
    } else {
      fs::remove_all(run);
    }
    const Outcome resumed = run_cli(dir_, args);
    ASSERT_EQ(resumed.exit_code(), 0) << tag << ": " << resumed.err;
    EXPECT_EQ(weights(run / "last.onnx"), reference_weights_) << tag;
    EXPECT_EQ(read_text(run / "metrics.csv"), reference_metrics_) << tag;
  }

  // The uninterrupted run: its result and how many write events and bytes it makes.
  void run_reference() {
    const Outcome ref = run_cli(dir_, train_args("reference"), {"LD_PRELOAD=" ONNXTRAIN_FAULT_SHIM, "ONNXTRAIN_FAULT_COUNT=count.txt"});
    ASSERT_EQ(ref.exit_code(), 0) << ref.err;
    std::istringstream(read_text(dir_ / "count.txt")) >> events_ >> bytes_;
    ASSERT_GT(events_, 20) << "the shim saw too few writes to choose kill points from";
    reference_weights_ = weights(dir_ / "reference" / "last.onnx");
    reference_metrics_ = read_text(dir_ / "reference" / "metrics.csv");
  }

  fs::path dir_;
  long events_ = 0;
  long long bytes_ = 0;
  std::map<std::string, std::string> reference_weights_;
  std::string reference_metrics_;
};

TEST_F(FaultInjection, KillAtRandomWritePointsThenResumeBitIdentically) {
  ASSERT_NO_FATAL_FAILURE(run_reference());
  std::mt19937 rng(15);
  std::uniform_int_distribution<long> pick(1, events_);
  std::set<long> points;
  while (points.size() < std::min<size_t>(60, static_cast<size_t>(events_))) points.insert(pick(rng));
  int killed = 0;
  for (long k : points) {
    const std::string tag = "kill at write event " + std::to_string(k) + " of " + std::to_string(events_);
    SCOPED_TRACE(tag);
    const fs::path run = dir_ / ("kill" + std::to_string(k));
    const Outcome out = run_cli(dir_, train_args(run.filename().string()),
                                {"LD_PRELOAD=" ONNXTRAIN_FAULT_SHIM, "ONNXTRAIN_FAULT_KILL_AT=" + std::to_string(k)});
    ASSERT_TRUE(out.killed()) << "status " << out.status << ": " << out.err;
    ++killed;
    if (fs::exists(run)) expect_no_partial_files(run);
    ASSERT_NO_FATAL_FAILURE(expect_resume_reproduces(run, tag));
    fs::remove_all(run);
  }
  EXPECT_GE(killed, 50);
}

TEST_F(FaultInjection, DiskFullFailsNamingTheFileAndKeepsTheLastCheckpoint) {
  ASSERT_NO_FATAL_FAILURE(run_reference());
  for (int percent : {10, 35, 60, 85}) {
    const long long budget = bytes_ * percent / 100;
    const std::string tag = "disk full after " + std::to_string(budget) + " of " + std::to_string(bytes_) + " bytes";
    SCOPED_TRACE(tag);
    const fs::path run = dir_ / ("full" + std::to_string(percent));
    const Outcome out = run_cli(dir_, train_args(run.filename().string()),
                                {"LD_PRELOAD=" ONNXTRAIN_FAULT_SHIM, "ONNXTRAIN_FAULT_ENOSPC_AFTER=" + std::to_string(budget)});
    EXPECT_NE(out.exit_code(), 0) << out.err;
    EXPECT_FALSE(WIFSIGNALED(out.status)) << "status " << out.status;
    EXPECT_NE(out.err.find("No space left on device"), std::string::npos) << out.err;
    EXPECT_NE(out.err.find(run.filename().string() + "/"), std::string::npos) << "names no file: " << out.err;
    ASSERT_TRUE(fs::exists(run));
    if (fs::exists(run / "checkpoint.npz")) {  // and says which step it holds
      EXPECT_TRUE(out.err.find("is saved in") != std::string::npos || out.err.find("still holds step") != std::string::npos)
          << out.err;
    }
    expect_no_partial_files(run);
    for (const auto& entry : fs::directory_iterator(run))
      EXPECT_EQ(entry.path().filename().string().find(".tmp"), std::string::npos) << "left behind: " << entry.path();
    ASSERT_NO_FATAL_FAILURE(expect_resume_reproduces(run, tag));
  }
}

// Runs started together on the same runs/train/ each get a folder of their own.
TEST_F(FaultInjection, ConcurrentRunsGetDistinctRunFolders) {
  constexpr int kRuns = 4;
  std::vector<std::string> args = {"train", "linear.onnx", "--data", "data.csv", "--epochs", "1", "--threads", "1", "-q"};
  std::vector<std::string> argv_s = {ONNXTRAIN_CLI};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<pid_t> pids;
  for (int i = 0; i < kRuns; ++i) {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addchdir_np(&actions, dir_.c_str());
    pid_t pid = 0;
    ASSERT_EQ(posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    pids.push_back(pid);
  }
  for (pid_t pid : pids) {
    int status = 0;
    waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }
  std::set<std::string> runs;
  for (const auto& entry : fs::directory_iterator(dir_ / "runs" / "train")) {
    runs.insert(entry.path().filename().string());
    EXPECT_NO_THROW(Model::load((entry.path() / "last.onnx").string())) << entry.path();
    const std::string config = read_text(entry.path() / "config.toml");
    EXPECT_NE(config.find("data.csv"), std::string::npos) << entry.path();
  }
  EXPECT_EQ(runs.size(), static_cast<size_t>(kRuns));
}

}  // namespace
