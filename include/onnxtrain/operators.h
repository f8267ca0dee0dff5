#pragma once
// What onnxtrain can run and differentiate: one entry per registered operator version range.
#include <string>
#include <vector>

namespace onnxtrain {

struct OperatorInfo {
  std::string domain;  // "" = ai.onnx
  std::string op_type;
  int since_version = 1;
  int until_version = 0;  // 0 = still current
  std::string backend;    // "oneDNN <primitive>" or "own"
  // "yes", "no" (float op without a rule yet) or "not differentiable"
  std::string gradient;
};

std::vector<OperatorInfo> list_operators();

}  // namespace onnxtrain
