#include "onnxtrain/metrics.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "onnxtrain/errors.h"

namespace onnxtrain {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

bool is_integer(DType t) {
  switch (t) {
    case DType::Int8: case DType::Int16: case DType::Int32: case DType::Int64:
    case DType::UInt8: case DType::UInt16: case DType::UInt32: case DType::UInt64:
      return true;
    default:
      return false;
  }
}

// Class scores [N, C, d...] against targets [N, d...] (or [N, 1, d...]), checked and
// flattened: score of class j at position (i, k) is scores[(i * c + j) * inner + k].
struct Classification {
  int64_t n = 0, c = 0, inner = 0;
  std::vector<int64_t> targets;  // n * inner, in (i, k) order
};

Classification classification(const std::string& metric, const Tensor& output, const Tensor& target) {
  const std::string pair = "output " + shape_str(output.shape()) + " and target " + shape_str(target.shape());
  if (output.dtype() != DType::Float && output.dtype() != DType::Double)
    throw DataError(metric + ": class scores must be float32 or float64, the output is " + dtype_name(output.dtype()));
  if (output.rank() < 2 || output.dim(1) < 1)
    throw DataError(metric + ": needs class scores [N, C] or [N, C, d...] with C >= 1; got " + pair);
  if (!is_integer(target.dtype()))
    throw DataError(metric + ": targets must be integer class indices, got " + dtype_name(target.dtype()) + " (" +
                    pair + ")");
  Shape without = output.shape();
  without.erase(without.begin() + 1);
  Shape keepdim = output.shape();
  keepdim[1] = 1;
  if (target.shape() != without && target.shape() != keepdim)
    throw DataError(metric + ": " + pair + " do not fit; expected target " + shape_str(without) + " or " +
                    shape_str(keepdim));
  Classification r;
  r.n = output.dim(0);
  r.c = output.dim(1);
  r.inner = r.n * r.c == 0 ? 0 : output.numel() / (r.n * r.c);
  r.targets = target.as_int64();
  return r;
}

// a ranks strictly above b; NaN ranks above every number, as numpy.argmax treats it.
template <typename T>
bool ranks_above(T a, T b) {
  if (std::isnan(a)) return !std::isnan(b);
  if (std::isnan(b)) return false;
  return a > b;
}

// Calls f(position, predicted_class, target) for every non-ignored position after
// checking every target, so a bad batch leaves the caller's state untouched.
// With k > 0, `predicted_class` is instead 1 when the target is among the top k, else 0.
template <typename T, typename F>
void for_each_position(const std::string& metric, const Classification& cl, const T* scores, int64_t ignore_index,
                       int64_t k, F&& f) {
  for (size_t p = 0; p < cl.targets.size(); ++p) {
    const int64_t t = cl.targets[p];
    if (t != ignore_index && (t < 0 || t >= cl.c))
      throw DataError(metric + ": target " + std::to_string(t) + " at flat position " + std::to_string(p) +
                      " is not a class index in [0, " + std::to_string(cl.c) + ") (ignore_index is " +
                      std::to_string(ignore_index) + ")");
  }
  for (int64_t i = 0; i < cl.n; ++i)
    for (int64_t q = 0; q < cl.inner; ++q) {
      const int64_t t = cl.targets[i * cl.inner + q];
      if (t == ignore_index) continue;
      const T* s = scores + i * cl.c * cl.inner + q;
      auto at = [&](int64_t j) { return s[j * cl.inner]; };
      if (k == 0) {
        int64_t best = 0;
        for (int64_t j = 1; j < cl.c; ++j)
          if (ranks_above(at(j), at(best))) best = j;
        f(best, t);
      } else {
        // Classes ranking above the target: higher scores, or equal scores at lower indices.
        int64_t above = 0;
        for (int64_t j = 0; j < cl.c && above < k; ++j)
          if (j != t && (ranks_above(at(j), at(t)) || (j < t && !ranks_above(at(t), at(j))))) ++above;
        f(above < k ? 1 : 0, t);
      }
    }
}

template <typename F>
void dispatch_scores(const std::string& metric, const Tensor& output, const Classification& cl, int64_t ignore_index,
                     int64_t k, F&& f) {
  if (output.dtype() == DType::Float)
    for_each_position(metric, cl, output.data<float>(), ignore_index, k, f);
  else
    for_each_position(metric, cl, output.data<double>(), ignore_index, k, f);
}

Shape squeezed(const Shape& s) {
  Shape out;
  for (int64_t d : s)
    if (d != 1) out.push_back(d);
  return out;
}

}  // namespace

bool Metric::improves(double candidate, double best) const {
  if (std::isnan(candidate)) return false;
  if (std::isnan(best)) return true;
  return higher_is_better() ? candidate > best : candidate < best;
}

TopKAccuracy::TopKAccuracy(int64_t k, int64_t ignore_index) : k_(k), ignore_index_(ignore_index) {
  if (k < 1) throw DataError("top-k accuracy needs k >= 1, got " + std::to_string(k));
}

std::string TopKAccuracy::name() const { return k_ == 1 ? "accuracy" : "top" + std::to_string(k_); }

void TopKAccuracy::update(const Tensor& output, const Tensor& target) {
  Classification cl = classification(name(), output, target);
  if (k_ > cl.c)
    throw DataError(name() + " needs at least " + std::to_string(k_) + " classes, but output " +
                    shape_str(output.shape()) + " has " + std::to_string(cl.c));
  int64_t correct = 0, total = 0;
  // k = 1 takes the argmax path: one comparison per class instead of two.
  dispatch_scores(name(), output, cl, ignore_index_, k_ == 1 ? 0 : k_, [&](int64_t hit, int64_t t) {
    correct += k_ == 1 ? hit == t : hit;
    ++total;
  });
  correct_ += correct;
  total_ += total;
}

double TopKAccuracy::value() const {
  return total_ ? static_cast<double>(correct_) / static_cast<double>(total_) : kNaN;
}

MeanError::MeanError(Kind kind) : kind_(kind) {}

void MeanError::update(const Tensor& output, const Tensor& target) {
  if (squeezed(output.shape()) != squeezed(target.shape()))
    throw DataError(name() + ": output " + shape_str(output.shape()) + " and target " + shape_str(target.shape()) +
                    " do not hold the same elements (shapes must match up to size-1 dimensions)");
  std::vector<double> o = output.as_double(), t = target.as_double();
  double sum = 0;
  for (size_t i = 0; i < o.size(); ++i) {
    const double d = o[i] - t[i];
    sum += kind_ == Kind::Squared ? d * d : std::abs(d);
  }
  sum_ += sum;
  count_ += static_cast<int64_t>(o.size());
}

double MeanError::value() const { return count_ ? sum_ / static_cast<double>(count_) : kNaN; }

void MeanLoss::add(double batch_loss, int64_t batch_size) {
  if (batch_size < 0) throw DataError("mean loss: negative batch size " + std::to_string(batch_size));
  sum_ += batch_loss * static_cast<double>(batch_size);
  count_ += batch_size;
}

double MeanLoss::value() const { return count_ ? sum_ / static_cast<double>(count_) : kNaN; }

ConfusionMatrix::ConfusionMatrix(int64_t classes, std::vector<std::string> class_names, int64_t ignore_index)
    : ignore_index_(ignore_index), names_(std::move(class_names)) {
  if (classes < 0) throw DataError("confusion matrix: negative number of classes " + std::to_string(classes));
  if (classes > 0 && !names_.empty() && static_cast<int64_t>(names_.size()) != classes)
    throw DataError("confusion matrix: " + std::to_string(names_.size()) + " class names for " +
                    std::to_string(classes) + " classes");
  resize(classes ? classes : static_cast<int64_t>(names_.size()));
}

void ConfusionMatrix::resize(int64_t classes) {
  classes_ = classes;
  counts_.assign(static_cast<size_t>(classes * classes), 0);
  total_ = 0;
}

void ConfusionMatrix::reset() { resize(classes_); }

void ConfusionMatrix::update(const Tensor& output, const Tensor& target) {
  Classification cl = classification("confusion matrix", output, target);
  if (classes_ != 0 && cl.c != classes_)
    throw DataError("confusion matrix: output " + shape_str(output.shape()) + " has " + std::to_string(cl.c) +
                    " classes, the matrix has " + std::to_string(classes_));
  if (!names_.empty() && static_cast<int64_t>(names_.size()) != cl.c)
    throw DataError("confusion matrix: " + std::to_string(names_.size()) + " class names, but output " +
                    shape_str(output.shape()) + " has " + std::to_string(cl.c) + " classes");
  std::vector<std::pair<int64_t, int64_t>> pairs;
  dispatch_scores("confusion matrix", output, cl, ignore_index_, 0,
                  [&](int64_t predicted, int64_t t) { pairs.emplace_back(t, predicted); });
  if (classes_ == 0) resize(cl.c);
  for (auto [t, p] : pairs) add(t, p);
}

void ConfusionMatrix::check_class(int64_t cls, const char* what) const {
  if (cls < 0 || cls >= classes_)
    throw DataError(std::string("confusion matrix: ") + what + " class " + std::to_string(cls) + " is not in [0, " +
                    std::to_string(classes_) + ")");
}

void ConfusionMatrix::add(int64_t truth, int64_t predicted, int64_t n) {
  check_class(truth, "true");
  check_class(predicted, "predicted");
  if (n < 0) throw DataError("confusion matrix: negative count " + std::to_string(n));
  counts_[static_cast<size_t>(truth * classes_ + predicted)] += n;
  total_ += n;
}

int64_t ConfusionMatrix::count(int64_t truth, int64_t predicted) const {
  check_class(truth, "true");
  check_class(predicted, "predicted");
  return counts_[static_cast<size_t>(truth * classes_ + predicted)];
}

int64_t ConfusionMatrix::support(int64_t truth) const {
  check_class(truth, "true");
  int64_t s = 0;
  for (int64_t p = 0; p < classes_; ++p) s += counts_[static_cast<size_t>(truth * classes_ + p)];
  return s;
}

int64_t ConfusionMatrix::predicted_count(int64_t cls) const {
  check_class(cls, "predicted");
  int64_t s = 0;
  for (int64_t t = 0; t < classes_; ++t) s += counts_[static_cast<size_t>(t * classes_ + cls)];
  return s;
}

double ConfusionMatrix::precision(int64_t cls) const {
  const int64_t p = predicted_count(cls);
  return p ? static_cast<double>(count(cls, cls)) / static_cast<double>(p) : kNaN;
}

double ConfusionMatrix::recall(int64_t cls) const {
  const int64_t s = support(cls);
  return s ? static_cast<double>(count(cls, cls)) / static_cast<double>(s) : kNaN;
}

double ConfusionMatrix::accuracy() const {
  if (!total_) return kNaN;
  int64_t trace = 0;
  for (int64_t c = 0; c < classes_; ++c) trace += counts_[static_cast<size_t>(c * classes_ + c)];
  return static_cast<double>(trace) / static_cast<double>(total_);
}

std::string ConfusionMatrix::class_name(int64_t cls) const {
  check_class(cls, "named");
  return names_.empty() ? std::to_string(cls) : names_[static_cast<size_t>(cls)];
}

std::unique_ptr<Metric> make_metric(std::string_view name, int64_t ignore_index) {
  std::string n(name);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char ch) { return std::tolower(ch); });
  if (n == "accuracy" || n == "acc") return std::make_unique<TopKAccuracy>(1, ignore_index);
  if (n == "mse") return std::make_unique<MeanError>(MeanError::Kind::Squared);
  if (n == "mae") return std::make_unique<MeanError>(MeanError::Kind::Absolute);
  if (n == "miou") return std::make_unique<SegmentationMetric>(SegmentationMetric::Kind::MeanIoU, ignore_index);
  if (n == "pixel_accuracy") return std::make_unique<SegmentationMetric>(SegmentationMetric::Kind::PixelAccuracy, ignore_index);
  if (n.size() > 3 && n.compare(0, 3, "top") == 0) {
    int64_t k = 0;
    const char* end = n.data() + n.size();
    auto [ptr, ec] = std::from_chars(n.data() + 3, end, k);
    if (ec == std::errc() && ptr == end && k >= 1) return std::make_unique<TopKAccuracy>(k, ignore_index);
  }
  throw DataError("unknown metric '" + std::string(name) + "'; expected accuracy, topK (e.g. top5), mse, mae, miou or pixel_accuracy");
}

}  // namespace onnxtrain
