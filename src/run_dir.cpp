#include "src/run_dir.h"

#include <stdio_ext.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "onnxtrain/atomic_file.h"
#include "onnxtrain/errors.h"

namespace onnxtrain {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& path, int err) {
  throw BackendError(what + " '" + path.string() + "': " + std::strerror(err));
}

const std::vector<std::string> kFixedColumns = {"step", "epoch", "lr", "loss"};

std::string join_row(const std::vector<std::string>& fields) {
  std::string line;
  for (size_t i = 0; i < fields.size(); ++i) line += (i ? "," : "") + fields[i];
  return line + "\n";
}

std::string header_line(const std::vector<std::string>& columns) {
  std::vector<std::string> quoted;
  for (const auto& c : columns) quoted.push_back(csv_field(c));
  return join_row(quoted);
}

// Rewrites `path` (atomically) without its rows after `last_step` and without a last line
// that lacks its line break; leaves it untouched when there is nothing to drop.
void keep_rows_through(const fs::path& path, const std::string& header, int64_t last_step) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::string kept = header + "\n";
  size_t pos = kept.size();
  bool dropped = false;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    if (end == std::string::npos) {
      dropped = true;  // torn: the process died inside this row
      break;
    }
    const std::string_view line(text.data() + pos, end - pos);
    int64_t step = 0;
    const auto [stop, err] = std::from_chars(line.data(), line.data() + line.size(), step);
    if (err == std::errc() && stop != line.data() + line.size() && *stop == ',' && step > last_step)
      dropped = true;
    else
      kept.append(line).append("\n");
    pos = end + 1;
  }
  if (dropped) write_file_atomically(path.string(), kept);
}

}  // namespace

fs::path create_numbered_run_dir(const fs::path& parent) {
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw BackendError("cannot create run directory parent '" + parent.string() + "': " + ec.message());
  int64_t highest = 0;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string name = entry.path().filename().string();
    int64_t n = 0;
    auto [end, err] = std::from_chars(name.data(), name.data() + name.size(), n);
    if (err == std::errc() && end == name.data() + name.size() && n > highest) highest = n;
  }
  if (ec) throw BackendError("cannot list '" + parent.string() + "': " + ec.message());
  // mkdir is atomic: of two runs racing for the same number exactly one gets it.
  for (int64_t n = highest + 1; n <= highest + 1000; ++n) {
    fs::path dir = parent / std::to_string(n);
    if (::mkdir(dir.c_str(), 0777) == 0) return dir;
    if (errno != EEXIST) fail("cannot create run directory", dir, errno);
  }
  throw BackendError("cannot claim a numbered run directory in '" + parent.string() + "' (1000 attempts lost)");
}

std::string csv_field(std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) return std::string(text);
  std::string out = "\"";
  for (char ch : text) out += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return out + "\"";
}

std::string format_number(double value) {
  if (std::isnan(value)) return "nan";
  char buf[64];
  auto [end, err] = std::to_chars(buf, buf + sizeof buf, value);
  return std::string(buf, end);
}

MetricsCsv::MetricsCsv(const fs::path& path, std::vector<std::string> extra_columns, bool append, int64_t last_step)
    : path_(path), columns_(kFixedColumns) {
  for (auto& c : extra_columns) {
    if (c.empty()) throw DataError(path.string() + ": an optional metrics column has an empty name");
    for (const auto& have : columns_)
      if (have == c) throw DataError(path.string() + ": metrics column '" + c + "' is declared twice");
    columns_.push_back(std::move(c));
  }
  const std::string header = header_line(columns_);
  bool has_header = false;
  if (append) {
    std::ifstream in(path, std::ios::binary);
    std::string first;
    if (in && std::getline(in, first) && !first.empty()) {
      if (first + "\n" != header)
        throw DataError("cannot continue '" + path.string() + "': its columns are '" + first + "', this run writes '" +
                        header.substr(0, header.size() - 1) + "'");
      has_header = true;
      keep_rows_through(path, first, last_step);
    }
  }
  file_ = std::fopen(path.c_str(), append ? "ab" : "wb");
  if (!file_) fail("cannot open", path, errno);
  if (!has_header && (std::fputs(header.c_str(), file_) < 0 || std::fflush(file_) != 0)) {
    const int err = errno;
    std::fclose(file_);
    fail("cannot write", path, err);
  }
}

MetricsCsv::~MetricsCsv() {
  if (file_) std::fclose(file_);
}

void MetricsCsv::write(const MetricsRow& row) {
  std::vector<std::string> fields = {std::to_string(row.step), std::to_string(row.epoch), format_number(row.lr),
                                     format_number(row.loss)};
  size_t used = 0;
  for (size_t i = kFixedColumns.size(); i < columns_.size(); ++i) {
    auto it = row.extra.find(columns_[i]);
    fields.push_back(it == row.extra.end() ? "" : format_number(it->second));
    used += it != row.extra.end();
  }
  if (used != row.extra.size())
    for (const auto& [name, v] : row.extra)
      if (std::find(columns_.begin(), columns_.end(), name) == columns_.end()) {
        std::string declared = header_line(columns_);
        declared.pop_back();
        throw DataError(path_.string() + ": column '" + name + "' was not declared (columns: " + declared + ")");
      }
  const std::string line = join_row(fields);
  struct stat before {};
  const bool sized = ::fstat(::fileno(file_), &before) == 0;
  // One fwrite per row and a flush: a killed process loses at most the row being written.
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    const int error = errno;
    // A full disk may have taken part of the row: drop what stdio still holds and cut the
    // part that was written, so the file keeps whole rows only.
    __fpurge(file_);
    std::clearerr(file_);
    if (sized && ::ftruncate(::fileno(file_), before.st_size) != 0) {
      // Nothing more to do: the write's error is the one to report.
    }
    fail("cannot write", path_, error);
  }
}

std::string confusion_matrix_csv(const ConfusionMatrix& m) {
  std::vector<std::string> header = {"true\\predicted"};
  for (int64_t k = 0; k < m.classes(); ++k) header.push_back(csv_field(m.class_name(k)));
  std::string out = join_row(header);
  for (int64_t t = 0; t < m.classes(); ++t) {
    std::vector<std::string> row = {csv_field(m.class_name(t))};
    for (int64_t p = 0; p < m.classes(); ++p) row.push_back(std::to_string(m.count(t, p)));
    out += join_row(row);
  }
  return out;
}

std::string class_report_csv(const ConfusionMatrix& m) {
  std::string out = "class,precision,recall,support\n";
  auto value = [](double v) { return std::isnan(v) ? std::string() : format_number(v); };
  for (int64_t k = 0; k < m.classes(); ++k)
    out += join_row({csv_field(m.class_name(k)), value(m.precision(k)), value(m.recall(k)),
                     std::to_string(m.support(k))});
  return out;
}

}  // namespace onnxtrain
