#pragma once
// Running the onnxtrain binary from the CLI tests.
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

namespace onnxtrain::test {

struct CliResult {
  int code = -1;
  std::string output;  // stdout and stderr
};

// Runs `onnxtrain ARGS` (ONNXTRAIN_CLI is the binary's path, set by CMake).
inline CliResult run_cli(const std::string& args) {
  std::string cmd = std::string(ONNXTRAIN_CLI) + " " + args + " 2>&1";
  CliResult r;
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace onnxtrain::test
