// CSV files: numeric feature columns and a label column.
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <optional>
#include <set>
#include <span>

#include "onnxtrain/data.h"
#include "src/data_internal.h"

namespace onnxtrain {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view line) { return trim(line).empty(); }

// The file's non-blank lines, split into cells on demand (cells of the whole file at once
// would take many times the file's size).
class CsvReader {
 public:
  CsvReader(const std::string& path, const CsvOptions& options) : where_(data::quoted(path)) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw DataError("cannot read " + where_ + ": " + std::strerror(errno));
    text_.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    std::string_view rest = text_;
    if (rest.starts_with("\xEF\xBB\xBF")) rest.remove_prefix(3);  // a UTF-8 byte order mark
    for (int64_t number = 1; !rest.empty(); ++number) {
      const size_t end = rest.find('\n');
      std::string_view line = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!is_blank(line)) lines_.emplace_back(number, line);
    }
    if (lines_.empty()) throw DataError(where_ + " is empty");
    delimiter_ = options.delimiter ? options.delimiter : detect_delimiter(lines_.front().second);
  }

  size_t lines() const { return lines_.size(); }
  // 1-based, as editors count, blank lines included.
  int64_t line_number(size_t i) const { return lines_[i].first; }
  std::vector<std::string> cells(size_t i) const {
    std::vector<std::string> out;
    cells(i, out);
    return out;
  }
  void cells(size_t i, std::vector<std::string>& out) const { split(lines_[i].second, lines_[i].first, out); }

  const std::string& where() const { return where_; }
  [[noreturn]] void fail(int64_t line, const std::string& msg) const {
    throw DataError(where_ + " line " + std::to_string(line) + ": " + msg);
  }

 private:
  static char detect_delimiter(std::string_view line) {
    char best = ',';
    size_t best_count = 0;
    for (char c : {',', ';', '\t'}) {
      const auto count = static_cast<size_t>(std::count(line.begin(), line.end(), c));
      if (count > best_count) best = c, best_count = count;
    }
    return best;
  }

  // RFC 4180 cells: a quoted cell may hold the delimiter and doubled quotes.
  void split(std::string_view line, int64_t number, std::vector<std::string>& cells) const {
    cells.clear();
    size_t i = 0;
    while (true) {
      std::string cell;
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t') && line[i] != delimiter_) ++i;
      if (i < line.size() && line[i] == '"') {
        for (++i;; ++i) {
          if (i >= line.size()) fail(number, "a quoted cell is not closed (quoted line breaks are not supported)");
          if (line[i] == '"') {
            if (i + 1 < line.size() && line[i + 1] == '"') {
              cell += '"';
              ++i;
            } else {
              ++i;
              break;
            }
          } else {
            cell += line[i];
          }
        }
        const size_t end = std::min(line.find(delimiter_, i), line.size());
        if (!trim(line.substr(i, end - i)).empty())
          fail(number, "text after the closing quote of cell " + std::to_string(cells.size() + 1));
        i = end;
      } else {
        const size_t end = std::min(line.find(delimiter_, i), line.size());
        cell = trim(line.substr(i, end - i));
        i = end;
      }
      cells.push_back(std::move(cell));
      if (i >= line.size()) break;
      ++i;  // the delimiter
    }
  }

  std::string where_, text_;
  char delimiter_ = ',';
  std::vector<std::pair<int64_t, std::string_view>> lines_;
};

bool parse_float(std::string_view s, float* out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  if (s.empty()) return false;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && end == s.data() + s.size();
}

bool is_number(std::string_view s) {
  float v;
  return parse_float(s, &v);
}

// Integers are parsed as integers (float32 would round labels beyond 2^24).
bool parse_class_index(std::string_view s, int64_t* out) {
  s = trim(s);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  if (ec == std::errc() && end == s.data() + s.size()) return true;
  double d;
  auto [end2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
  if (ec2 != std::errc() || end2 != s.data() + s.size() || !(std::fabs(d) < 9e15) || d != std::trunc(d)) return false;
  *out = static_cast<int64_t>(d);
  return true;
}

bool detect_header(const CsvReader& reader) {
  const auto first = reader.cells(0);
  if (std::none_of(first.begin(), first.end(), [](const std::string& c) { return is_number(c); })) return true;
  if (reader.lines() < 2) return false;
  const auto second = reader.cells(1);
  for (size_t c = 0; c < first.size() && c < second.size(); ++c)
    if (!is_number(first[c]) && is_number(second[c])) return true;
  return false;
}

class Columns {
 public:
  Columns(const CsvReader& reader, std::vector<std::string> names, bool header)
      : reader_(reader), names_(std::move(names)), header_(header) {}

  std::string describe(size_t c) const {
    return "column " + std::to_string(c + 1) + (header_ ? " ('" + names_[c] + "')" : "");
  }
  std::optional<size_t> find(const std::string& name) const {
    if (header_)
      for (size_t c = 0; c < names_.size(); ++c)
        if (names_[c] == name) return c;
    return std::nullopt;
  }

  // A header name, or a 0-based column number (negative from the end).
  size_t resolve(const std::string& spec, const std::string& role) const {
    if (auto c = find(spec)) return *c;
    int64_t k = 0;
    auto [end, ec] = std::from_chars(spec.data(), spec.data() + spec.size(), k);
    if (ec == std::errc() && end == spec.data() + spec.size()) {
      const auto n = static_cast<int64_t>(names_.size());
      if (k < -n || k >= n)
        throw DataError(reader_.where() + ": the " + role + " column number " + spec + " is outside the file's " +
                        std::to_string(n) + " columns (0-based; negative counts from the end)");
      return static_cast<size_t>(k < 0 ? k + n : k);
    }
    if (!header_)
      throw DataError(reader_.where() + " has no header row, so the " + role + " column '" + spec +
                      "' must be given by its 0-based number");
    throw DataError(reader_.where() + " has no " + role + " column '" + spec + "' (columns: " +
                    data::join_names(names_) + ")");
  }

 private:
  const CsvReader& reader_;
  std::vector<std::string> names_;
  bool header_;
};

// The label column: float32 values, int64 class indices, or class names indexed in sorted
// order (when any cell is not a number).
Tensor parse_labels(const CsvReader& reader, const std::string& column, const std::vector<std::string>& cells,
                    const std::vector<int64_t>& line, DType dtype, std::vector<std::string>* classes) {
  const auto n = static_cast<int64_t>(cells.size());
  auto fail = [&](int64_t r, const std::string& what) { reader.fail(line[r], column + ": " + what); };
  for (int64_t r = 0; r < n; ++r)
    if (cells[r].empty()) fail(r, "an empty label cell");
  if (dtype == DType::Float) {
    Tensor y(DType::Float, {n});
    float* py = y.data<float>();
    for (int64_t r = 0; r < n; ++r)
      if (!parse_float(cells[r], &py[r]) || !std::isfinite(py[r]))
        fail(r, "'" + cells[r] + "' is not a finite number (float labels)");
    return y;
  }
  Tensor y(DType::Int64, {n});
  int64_t* py = y.data<int64_t>();
  if (std::any_of(cells.begin(), cells.end(), [](const std::string& c) { return !is_number(c); })) {
    const std::set<std::string> unique(cells.begin(), cells.end());
    classes->assign(unique.begin(), unique.end());
    for (int64_t r = 0; r < n; ++r) py[r] = std::lower_bound(classes->begin(), classes->end(), cells[r]) - classes->begin();
    return y;
  }
  for (int64_t r = 0; r < n; ++r)
    if (!parse_class_index(cells[r], &py[r]))
      fail(r, "'" + cells[r] + "' is not a class index (an integer); use float labels for regression");
  return y;
}

}  // namespace

DatasetPtr open_csv(const std::string& path, const CsvOptions& options) {
  if (options.label_dtype != DType::Int64 && options.label_dtype != DType::Float)
    throw DataError(data::quoted(path) + ": CSV labels are int64 (classes) or float32 (regression), not " +
                    dtype_name(options.label_dtype));
  const CsvReader reader(path, options);
  const bool header = options.header == CsvOptions::Header::Auto ? detect_header(reader)
                                                                   : options.header == CsvOptions::Header::Yes;
  const std::vector<std::string> first = reader.cells(0);
  const size_t width = first.size();
  std::vector<std::string> names;
  for (size_t c = 0; c < width; ++c) names.push_back(header ? first[c] : std::to_string(c));
  const Columns columns(reader, names, header);
  const size_t begin = header ? 1 : 0;
  if (reader.lines() == begin)
    throw DataError(reader.where() + " has a header (line " + std::to_string(reader.line_number(0)) + ") but no rows");

  std::optional<size_t> label;
  if (!options.label.empty()) {
    if (!options.label_column.empty()) label = columns.resolve(options.label_column, "label");
    else label = columns.find(options.label).value_or(width - 1);
  }
  std::vector<size_t> features;
  for (const auto& spec : options.features) {
    features.push_back(columns.resolve(spec, "feature"));
    if (features.back() == label)
      throw DataError(reader.where() + ": " + columns.describe(*label) + " is both the label and a feature");
  }
  if (options.features.empty())
    for (size_t c = 0; c < width; ++c)
      if (c != label) features.push_back(c);
  if (features.empty()) throw DataError(reader.where() + " has no feature columns besides the label column");
  if (!options.label.empty() && options.input == options.label)
    throw DataError(reader.where() + ": the features and the labels are both named '" + options.input + "'");

  const auto n = static_cast<int64_t>(reader.lines() - begin);
  const auto f = static_cast<int64_t>(features.size());
  Tensor x(DType::Float, {n, f});
  float* px = x.data<float>();
  std::vector<std::string> cells, label_cells;
  std::vector<int64_t> line(static_cast<size_t>(n));
  for (int64_t r = 0; r < n; ++r) {
    reader.cells(begin + r, cells);
    line[r] = reader.line_number(begin + r);
    if (cells.size() != width)
      reader.fail(line[r], std::to_string(cells.size()) + " cells, but line " + std::to_string(reader.line_number(0)) +
                               " has " + std::to_string(width));
    for (int64_t j = 0; j < f; ++j) {
      const std::string& cell = cells[features[j]];
      float& v = px[r * f + j];
      if (!parse_float(cell, &v))
        reader.fail(line[r], columns.describe(features[j]) + ": " +
                                 (cell.empty() ? "an empty cell (missing value)" : "'" + cell + "' is not a number"));
      if (!std::isfinite(v)) reader.fail(line[r], columns.describe(features[j]) + ": '" + cell + "' is not a finite float32");
    }
    if (label) label_cells.push_back(std::move(cells[*label]));
  }

  std::map<std::string, Tensor> arrays;
  arrays.emplace(options.input, std::move(x));
  std::vector<std::string> classes;
  if (label)
    arrays.emplace(options.label, parse_labels(reader, columns.describe(*label), label_cells, line, options.label_dtype, &classes));
  return data::make_array_dataset(std::move(arrays), reader.where(), std::move(classes));
}

}  // namespace onnxtrain
