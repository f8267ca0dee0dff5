#pragma once
// Helpers shared by the detect_*.cpp dataset readers (not part of the public API).
#include <string>
#include <vector>

#include "onnxtrain/detection.h"

namespace onnxtrain::detect {

// Every problem of a dataset, reported at once: fixing a labelled dataset one error per run
// is slow, and the first few problems usually show the pattern.
class Problems {
 public:
  explicit Problems(std::string source) : source_(std::move(source)) {}
  // `where` names the file (and line, or annotation).
  void add(const std::string& where, const std::string& what) { items_.push_back(where + ": " + what); }
  bool empty() const { return items_.empty(); }
  // A DataError listing the first kShown problems and the count, unless there are none.
  void throw_if_any() const;

 private:
  static constexpr size_t kShown = 10;
  std::string source_;
  std::vector<std::string> items_;
};

// How far a normalised coordinate may stray outside [0, 1] (rounding in label writers).
inline constexpr double kBoxTolerance = 1e-6;

}  // namespace onnxtrain::detect
