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

struct Row {
  int64_t line = 0;  // 1-based, as editors count
  std::vector<std::string> cells;
};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool is_blank(std::string_view line) { return trim(line).empty(); }

class CsvReader {
 public:
  CsvReader(std::string path, const CsvOptions& options) : path_(std::move(path)), where_(data::quoted(path_)) {
    std::ifstream in(path_, std::ios::binary);
    if (!in) throw DataError("cannot read " + where_ + ": " + std::strerror(errno));
    std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) text.erase(0, 3);

    std::vector<std::pair<int64_t, std::string_view>> lines;
    std::string_view rest = text;
    for (int64_t number = 1; !rest.empty(); ++number) {
      const size_t end = rest.find('\n');
      std::string_view line = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (!is_blank(line)) lines.emplace_back(number, line);
    }
    if (lines.empty()) throw DataError(where_ + " is empty");

    delimiter_ = options.delimiter ? options.delimiter : detect_delimiter(lines.front().second);
    for (const auto& [number, line] : lines) rows_.push_back({number, split(line, number)});
  }

  const std::vector<Row>& rows() const { return rows_; }
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
  std::vector<std::string> split(std::string_view line, int64_t number) const {
    std::vector<std::string> cells;
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
    return cells;
  }

  std::string path_, where_;
  char delimiter_ = ',';
  std::vector<Row> rows_;
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

bool detect_header(const std::vector<Row>& rows) {
  const auto& first = rows[0].cells;
  if (std::none_of(first.begin(), first.end(), [](const std::string& c) { return is_number(c); })) return true;
  if (rows.size() < 2) return false;
  const auto& second = rows[1].cells;
  for (size_t c = 0; c < first.size() && c < second.size(); ++c)
    if (!is_number(first[c]) && is_number(second[c])) return true;
  return false;
}

class Columns {
 public:
  Columns(const CsvReader& reader, std::vector<std::string> names, bool header)
      : reader_(reader), names_(std::move(names)), header_(header) {}

  size_t count() const { return names_.size(); }
  const std::string& name(size_t c) const { return names_[c]; }
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

}  // namespace

DatasetPtr open_csv(const std::string& path, const CsvOptions& options) {
  CsvReader reader(path, options);
  const auto& all = reader.rows();
  const bool header = options.header == CsvOptions::Header::Auto ? detect_header(all)
                                                                   : options.header == CsvOptions::Header::Yes;
  const size_t width = all[0].cells.size();
  std::vector<std::string> names;
  for (size_t c = 0; c < width; ++c) names.push_back(header ? all[0].cells[c] : std::to_string(c));
  const Columns columns(reader, names, header);
  const std::span<const Row> rows(all.data() + (header ? 1 : 0), all.size() - (header ? 1 : 0));
  if (rows.empty()) throw DataError(reader.where() + " has a header (line " + std::to_string(all[0].line) + ") but no rows");
  for (const auto& row : rows)
    if (row.cells.size() != width)
      reader.fail(row.line, std::to_string(row.cells.size()) + " cells, but line " + std::to_string(all[0].line) +
                                " has " + std::to_string(width));

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

  const auto n = static_cast<int64_t>(rows.size());
  const auto f = static_cast<int64_t>(features.size());
  Tensor x(DType::Float, {n, f});
  float* px = x.data<float>();
  for (int64_t r = 0; r < n; ++r)
    for (int64_t j = 0; j < f; ++j) {
      const std::string& cell = rows[r].cells[features[j]];
      if (!parse_float(cell, &px[r * f + j]))
        reader.fail(rows[r].line, columns.describe(features[j]) + ": " +
                                      (cell.empty() ? "an empty cell (missing value)" : "'" + cell + "' is not a number"));
      if (!std::isfinite(px[r * f + j]))
        reader.fail(rows[r].line, columns.describe(features[j]) + ": '" + cell + "' is not a finite float32");
    }

  std::map<std::string, Tensor> arrays;
  arrays.emplace(options.input, std::move(x));
  std::vector<std::string> classes;
  if (label) {
    const size_t c = *label;
    auto cell_error = [&](const Row& row, const std::string& what) { reader.fail(row.line, columns.describe(c) + ": " + what); };
    for (const auto& row : rows)
      if (row.cells[c].empty()) cell_error(row, "an empty label cell");
    if (options.label_dtype == DType::Float) {
      Tensor y(DType::Float, {n});
      for (int64_t r = 0; r < n; ++r)
        if (!parse_float(rows[r].cells[c], &y.data<float>()[r]) || !std::isfinite(y.data<float>()[r]))
          cell_error(rows[r], "'" + rows[r].cells[c] + "' is not a finite number (float labels)");
      arrays.emplace(options.label, std::move(y));
    } else if (options.label_dtype == DType::Int64) {
      Tensor y(DType::Int64, {n});
      int64_t* py = y.data<int64_t>();
      const bool names_as_labels = std::any_of(rows.begin(), rows.end(), [&](const Row& row) { return !is_number(row.cells[c]); });
      if (names_as_labels) {
        const std::set<std::string> unique = [&] {
          std::set<std::string> s;
          for (const auto& row : rows) s.insert(row.cells[c]);
          return s;
        }();
        classes.assign(unique.begin(), unique.end());
        for (int64_t r = 0; r < n; ++r)
          py[r] = std::lower_bound(classes.begin(), classes.end(), rows[r].cells[c]) - classes.begin();
      } else {
        for (int64_t r = 0; r < n; ++r)
          if (!parse_class_index(rows[r].cells[c], &py[r]))
            cell_error(rows[r], "'" + rows[r].cells[c] + "' is not a class index (an integer); use float labels for regression");
      }
      arrays.emplace(options.label, std::move(y));
    } else {
      throw DataError(reader.where() + ": CSV labels are int64 (classes) or float32 (regression), not " +
                      dtype_name(options.label_dtype));
    }
  }
  return data::make_array_dataset(std::move(arrays), reader.where(), std::move(classes));
}

}  // namespace onnxtrain
