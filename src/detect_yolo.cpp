// The YOLO dataset layout: a data.yaml (read with yaml-cpp), image folders and the parallel
// labels/ folders with a `class cx cy w h` line per box.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "onnxtrain/detection.h"
#include "src/data_internal.h"
#include "src/detect_internal.h"

namespace onnxtrain {
namespace {

namespace fs = std::filesystem;

std::string scalar(const YAML::Node& node, const std::string& key, const std::string& file) {
  const YAML::Node v = node[key];
  if (!v || v.IsNull()) return "";
  if (!v.IsScalar())
    throw DataError(data::quoted(file) + ": '" + key + "' should be a folder name (lists of folders and .txt image lists are not supported)");
  return v.as<std::string>();
}

std::vector<std::string> class_names(const YAML::Node& names, const std::string& file) {
  std::vector<std::string> out;
  if (names.IsSequence()) {
    for (const auto& n : names) out.push_back(n.as<std::string>());
    return out;
  }
  if (!names.IsMap()) throw DataError(data::quoted(file) + ": 'names' must be a list or an {id: name} map");
  std::map<int64_t, std::string> by_id;
  for (const auto& kv : names) {
    int64_t id = -1;
    if (!YAML::convert<int64_t>::decode(kv.first, id) || id < 0)
      throw DataError(data::quoted(file) + ": the class id '" + kv.first.as<std::string>() + "' in 'names' is not a non-negative integer");
    by_id[id] = kv.second.as<std::string>();
  }
  for (const auto& [id, name] : by_id) {
    if (id != static_cast<int64_t>(out.size()))
      throw DataError(data::quoted(file) + ": the class ids in 'names' must be 0 .. " + std::to_string(by_id.size() - 1) +
                      " (missing " + std::to_string(out.size()) + ")");
    out.push_back(name);
  }
  return out;
}

// Ultralytics' img2label_paths: the last "images" folder of the path becomes "labels", the
// extension ".txt"; a path without an images folder keeps its labels beside the image.
fs::path label_path(const fs::path& image) {
  std::vector<fs::path> parts(image.begin(), image.end());
  for (auto it = parts.rbegin() + 1; it < parts.rend(); ++it)
    if (*it == "images") {
      *it = "labels";
      break;
    }
  fs::path out;
  for (const auto& p : parts) out /= p;
  return out.replace_extension(".txt");
}

std::vector<fs::path> files_below(const fs::path& dir, bool images) {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    if (p.filename().string().starts_with(".")) {
      if (it->is_directory(ec)) it.disable_recursion_pending();
      continue;
    }
    if (it->is_regular_file(ec) && (images ? data::image_extension(p.string()) : p.extension() == ".txt"))
      out.push_back(p);
  }
  if (ec) throw DataError("cannot read the directory " + data::quoted(dir.string()) + ": " + ec.message());
  std::sort(out.begin(), out.end());
  return out;
}

bool parse_number(const std::string& token, double& value) {
  auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  return ec == std::errc() && end == token.data() + token.size() && std::isfinite(value);
}

// The boxes of one label file in pixels of a width x height image; problems name the line.
std::vector<Box> read_labels(const fs::path& file, int width, int height, int64_t classes, detect::Problems& problems) {
  std::vector<Box> boxes;
  std::ifstream in(file);
  if (!in) {
    problems.add(data::quoted(file.string()), "cannot read the label file");
    return boxes;
  }
  std::string line;
  for (int64_t number = 1; std::getline(in, line); ++number) {
    const std::string where = data::quoted(file.string()) + " line " + std::to_string(number);
    std::istringstream tokens(line);
    std::vector<std::string> cells;
    for (std::string t; tokens >> t;) cells.push_back(t);
    if (cells.empty()) continue;
    double v[5];
    bool numbers = cells.size() == 5;
    for (size_t i = 0; numbers && i < 5; ++i) numbers = parse_number(cells[i], v[i]);
    if (!numbers) {
      problems.add(where, "expected 5 numbers 'class cx cy w h', got '" + line + "'");
      continue;
    }
    if (v[0] != std::floor(v[0]) || v[0] < 0 || v[0] >= static_cast<double>(classes)) {
      problems.add(where, "class " + cells[0] + " is outside [0, " + std::to_string(classes) + ")");
      continue;
    }
    const double x1 = v[1] - v[3] / 2, y1 = v[2] - v[4] / 2, x2 = v[1] + v[3] / 2, y2 = v[2] + v[4] / 2;
    const double tol = detect::kBoxTolerance;
    if (!(v[3] > 0 && v[4] > 0)) {
      problems.add(where, "the box has width " + cells[3] + " and height " + cells[4] + " (both must be > 0)");
      continue;
    }
    if (x1 < -tol || y1 < -tol || x2 > 1 + tol || y2 > 1 + tol) {
      problems.add(where, "the box '" + line + "' reaches outside the image ([0, 1] normalised coordinates)");
      continue;
    }
    auto px = [](double v, int size) { return static_cast<float>(std::clamp(v, 0.0, 1.0) * size); };
    boxes.push_back({static_cast<int64_t>(v[0]), px(x1, width), px(y1, height), px(x2, width), px(y2, height)});
  }
  return boxes;
}

}  // namespace

DataYaml read_data_yaml(const std::string& file) {
  YAML::Node root;
  try {
    root = YAML::LoadFile(file);
  } catch (const YAML::Exception& e) {
    throw DataError(data::quoted(file) + ": not a readable YAML file (" + e.what() + ")");
  }
  if (!root.IsMap()) throw DataError(data::quoted(file) + ": expected a map with keys path, train, val, names");
  try {
    DataYaml out;
    const fs::path here = fs::absolute(fs::path(file)).parent_path();
    const std::string path = scalar(root, "path", file);
    out.path = (path.empty() ? here : fs::path(path).is_absolute() ? fs::path(path) : here / path).lexically_normal().string();
    out.train = scalar(root, "train", file);
    out.val = scalar(root, "val", file);
    out.test = scalar(root, "test", file);
    if (!root["names"]) throw DataError(data::quoted(file) + ": 'names' (the class names) is missing");
    out.names = class_names(root["names"], file);
    if (root["nc"] && root["nc"].as<int64_t>() != static_cast<int64_t>(out.names.size()))
      throw DataError(data::quoted(file) + ": nc is " + root["nc"].as<std::string>() + " but 'names' has " +
                      std::to_string(out.names.size()) + " classes");
    if (out.names.empty()) throw DataError(data::quoted(file) + ": 'names' lists no classes");
    return out;
  } catch (const YAML::Exception& e) {
    throw DataError(data::quoted(file) + ": " + e.what());
  }
}

DetectionDatasetPtr open_yolo(const std::string& data_yaml, const std::string& split, const DetectionOptions& options) {
  const DataYaml cfg = read_data_yaml(data_yaml);
  const std::string rel = split == "train" ? cfg.train : split == "val" ? cfg.val : split == "test" ? cfg.test : "?";
  if (rel == "?") throw DataError(data::quoted(data_yaml) + ": no split '" + split + "' (train, val or test)");
  if (rel.empty()) throw DataError(data::quoted(data_yaml) + " names no '" + split + "' folder");
  const fs::path dir = fs::path(rel).is_absolute() ? fs::path(rel) : fs::path(cfg.path) / rel;
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw DataError(data::quoted(data_yaml) + ": the " + split + " folder " + data::quoted(dir.string()) + " is not a directory");

  detect::Problems problems(data::quoted(dir.string()));
  DetectionSummary summary;
  std::vector<DetectionRecord> records;
  std::map<fs::path, fs::path> image_of_label;
  const auto classes = static_cast<int64_t>(cfg.names.size());
  for (const fs::path& image : files_below(dir, true)) {
    const fs::path label = label_path(image);
    if (auto [it, fresh] = image_of_label.emplace(label, image); !fresh) {
      problems.add(data::quoted(image.string()), "shares its label file " + data::quoted(label.string()) + " with " +
                                                     data::quoted(it->second.string()) + " (same name, other format)");
      continue;
    }
    DetectionRecord r{image.string(), 0, 0, {}};
    if (std::string why; !data::read_image_size(r.image, r.width, r.height, why)) {
      problems.add(data::quoted(r.image), "not a readable image (" + why + ")");
      continue;
    }
    if (fs::exists(label, ec)) r.boxes = read_labels(label, r.width, r.height, classes, problems);
    summary.background += r.boxes.empty();
    summary.boxes += static_cast<int64_t>(r.boxes.size());
    records.push_back(std::move(r));
  }
  // Label files whose image is missing: usually a failed copy, and training would silently
  // lose those boxes.
  if (const fs::path labels = label_path(dir / "x").parent_path(); labels != dir && fs::is_directory(labels, ec))
    for (const fs::path& label : files_below(labels, false))
      if (!image_of_label.contains(label))
        problems.add(data::quoted(label.string()), "no image for this label file below " + data::quoted(dir.string()));
  problems.throw_if_any();
  summary.images = static_cast<int64_t>(records.size());
  return std::make_shared<DetectionDataset>(std::move(records), cfg.names, summary, data::quoted(dir.string()), options);
}

}  // namespace onnxtrain
