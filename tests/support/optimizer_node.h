#pragma once
// What the optimizer op tests share: value helpers and OptimizerNode, a model of one
// optimizer node with its session.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "onnxtrain/onnxtrain.h"
#include "tests/support/node_case.h"
#include "tests/support/test_support.h"

namespace onnxtrain::test::optim {

inline std::vector<double> pseudo_random(size_t n, uint32_t seed, double lo = -2.0, double hi = 2.0) {
  std::vector<double> v(n);
  for (auto& x : v) {
    seed = seed * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<double>(seed >> 8) / static_cast<double>(1 << 24);
  }
  return v;
}

inline Tensor make_tensor(DType dtype, const Shape& shape, const std::vector<double>& v) {
  if (dtype == DType::Float) return Tensor::from_vector<float>(shape, std::vector<float>(v.begin(), v.end()));
  return Tensor::from_vector<double>(shape, v);
}

inline std::vector<double> values(const Tensor& t) { return t.as_double(); }

// prefix + index (GCC 12 warns falsely (-Wrestrict) about "literal" + std::string).
inline std::string indexed(const char* prefix, int64_t i) {
  std::string s = prefix;
  s += std::to_string(i);
  return s;
}

inline std::string type_name(DType dtype) { return dtype == DType::Float ? "float" : "double"; }

// ONNX text dimensions; a scalar has none.
inline std::string dims(const Shape& s) {
  if (s.empty()) return "";
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(s[i]);
  }
  return out + "]";
}

inline void expect_close(const Tensor& actual, const std::vector<double>& expected, double rtol, double atol,
                  const std::string& what) {
  Tensor e = make_tensor(actual.dtype(), actual.shape(), expected);
  std::string report = test::compare_tensors(actual, e, rtol, atol);
  EXPECT_TRUE(report.empty()) << what << ": " << report;
}

// One optimizer node: inputs R, T, X_j, G_j, S_s_j; outputs Xn_j, Sn_s_j.
class OptimizerNode {
 public:
  OptimizerNode(const std::string& domain, const std::string& op, const std::string& attrs, DType dtype,
                std::vector<Shape> shapes, size_t states, DType lr_dtype = DType::Float)
      : shapes_(std::move(shapes)) {
    const std::string ty = type_name(dtype);
    std::string decl = type_name(lr_dtype) + " R, int64 T", outs, args = "R, T", results;
    auto add = [](std::string& list, const std::string& item) { list += (list.empty() ? "" : ", ") + item; };
    for (size_t j = 0; j < shapes_.size(); ++j) add(decl, ty + dims(shapes_[j]) + indexed(" X", j));
    for (size_t j = 0; j < shapes_.size(); ++j) add(decl, ty + dims(shapes_[j]) + indexed(" G", j));
    for (size_t s = 0; s < states; ++s)
      for (size_t j = 0; j < shapes_.size(); ++j) add(decl, ty + dims(shapes_[j]) + " " + state(s, j));
    for (size_t j = 0; j < shapes_.size(); ++j) {
      add(args, indexed("X", j));
      add(results, indexed("Xn", j));
      add(outs, ty + dims(shapes_[j]) + indexed(" Xn", j));
    }
    for (size_t j = 0; j < shapes_.size(); ++j) add(args, indexed("G", j));
    for (size_t s = 0; s < states; ++s)
      for (size_t j = 0; j < shapes_.size(); ++j) {
        add(args, state(s, j));
        add(results, new_state(s, j));
        add(outs, ty + dims(shapes_[j]) + " n" + state(s, j));
      }
    text_ = model_header(17, {{domain, 1}}) + "g (" + decl + ") => (" + outs + ") {\n  " + results + " = " + domain + "." + op + (attrs.empty() ? "" : " <" + attrs + ">") + " (" +
            args + ")\n}";
    model_ = std::make_unique<Model>(Model::from_text(text_));
    session_ = std::make_unique<InferenceSession>(*model_);
  }

  static std::string state(size_t s, size_t j) { return indexed("S", s) + indexed("_", j); }
  // The output holding state s of tensor j after the update.
  static std::string new_state(size_t s, size_t j) {
    std::string name = "n";
    name += state(s, j);
    return name;
  }

  // Runs one update; x and states are fed as given (in-place ops write into them).
  std::map<std::string, Tensor> run(const Tensor& lr, int64_t t, const std::vector<Tensor>& x,
                                    const std::vector<Tensor>& g, const std::vector<std::vector<Tensor>>& s) {
    std::map<std::string, Tensor> feeds{{"R", lr}, {"T", Tensor::scalar<int64_t>(t)}};
    for (size_t j = 0; j < x.size(); ++j) {
      feeds[indexed("X", j)] = x[j];
      feeds[indexed("G", j)] = g[j];
      for (size_t k = 0; k < s.size(); ++k) feeds[state(k, j)] = s[k][j];
    }
    return session_->run(feeds);
  }

  const std::string& text() const { return text_; }

 private:
  std::vector<Shape> shapes_;
  std::string text_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<InferenceSession> session_;
};

}  // namespace onnxtrain::test::optim
