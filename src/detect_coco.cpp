// COCO instances JSON (the bbox part): images, annotations and categories.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "onnxtrain/detection.h"
#include "src/data_internal.h"
#include "src/detect_internal.h"

namespace onnxtrain {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const json& array_field(const json& root, const char* key, const std::string& file) {
  if (!root.contains(key) || !root[key].is_array())
    throw DataError(data::quoted(file) + ": '" + key + "' should be an array (a COCO instances file)");
  return root[key];
}

}  // namespace

DetectionDatasetPtr open_coco(const std::string& annotations_json, const std::string& image_dir,
                              const DetectionOptions& options) {
  const std::string source = data::quoted(annotations_json);
  std::ifstream in(annotations_json);
  if (!in) throw DataError("cannot open " + source);
  json root;
  try {
    root = json::parse(in);
  } catch (const json::exception& e) {
    throw DataError(source + ": not valid JSON (" + e.what() + ")");
  }
  if (!root.is_object()) throw DataError(source + ": expected an object with images, annotations, categories");
  detect::Problems problems(source);
  try {
    // Categories: contiguous ids in sorted COCO id order (COCO's ids have gaps: 1..90 for 80).
    std::map<int64_t, std::string> categories;
    for (const json& c : array_field(root, "categories", annotations_json))
      categories[c.at("id").get<int64_t>()] = c.value("name", std::to_string(c.at("id").get<int64_t>()));
    if (categories.empty()) throw DataError(source + ": 'categories' is empty");
    std::map<int64_t, int64_t> class_of;
    std::vector<std::string> names;
    for (const auto& [id, name] : categories) {
      class_of[id] = static_cast<int64_t>(names.size());
      names.push_back(name);
    }

    std::vector<DetectionRecord> records;
    std::map<int64_t, size_t> record_of;
    std::map<std::string, int64_t> id_of_file;
    const json& images = array_field(root, "images", annotations_json);
    for (size_t i = 0; i < images.size(); ++i) {
      const json& im = images[i];
      const int64_t id = im.at("id").get<int64_t>();
      const std::string where = source + " images[" + std::to_string(i) + "] (id " + std::to_string(id) + ")";
      const std::string file_name = im.at("file_name").get<std::string>();
      if (auto [it, fresh] = id_of_file.emplace(file_name, id); !fresh) {
        problems.add(where, "the file " + data::quoted(file_name) + " is also image id " + std::to_string(it->second));
        continue;
      }
      if (record_of.contains(id)) {
        problems.add(where, "a second image with this id");
        continue;
      }
      DetectionRecord r{(fs::path(image_dir) / file_name).string(), 0, 0, {}};
      if (std::string why; !data::read_image_size(r.image, r.width, r.height, why)) {
        problems.add(where, data::quoted(r.image) + " is not a readable image (" + why + ")");
        continue;
      }
      if (im.contains("width") && im.contains("height") &&
          (im["width"].get<int64_t>() != r.width || im["height"].get<int64_t>() != r.height)) {
        problems.add(where, "the JSON says " + im["width"].dump() + "x" + im["height"].dump() + " but " +
                                data::quoted(r.image) + " is " + std::to_string(r.width) + "x" + std::to_string(r.height));
        continue;
      }
      record_of[id] = records.size();
      records.push_back(std::move(r));
    }

    DetectionSummary summary;
    const json& annotations = array_field(root, "annotations", annotations_json);
    for (size_t i = 0; i < annotations.size(); ++i) {
      const json& a = annotations[i];
      const std::string where =
          source + " annotations[" + std::to_string(i) + "]" + (a.contains("id") ? " (id " + a["id"].dump() + ")" : "");
      const int64_t image_id = a.at("image_id").get<int64_t>();
      const auto rec = record_of.find(image_id);
      if (rec == record_of.end()) {
        if (!std::any_of(images.begin(), images.end(), [&](const json& im) { return im.at("id") == image_id; }))
          problems.add(where, "image_id " + std::to_string(image_id) + " is not in 'images'");
        continue;  // its image already has a problem
      }
      if (a.value("iscrowd", 0) != 0) {
        ++summary.crowd;
        continue;
      }
      const int64_t category = a.at("category_id").get<int64_t>();
      if (!class_of.contains(category)) {
        problems.add(where, "category_id " + std::to_string(category) + " is not in 'categories'");
        continue;
      }
      const json& bbox = a.at("bbox");
      if (!bbox.is_array() || bbox.size() != 4 || !std::all_of(bbox.begin(), bbox.end(), [](const json& v) { return v.is_number(); })) {
        problems.add(where, "bbox should be 4 numbers [x, y, w, h], not " + bbox.dump());
        continue;
      }
      DetectionRecord& r = records[rec->second];
      const double x = bbox[0], y = bbox[1], w = bbox[2], h = bbox[3];
      const double tol_x = detect::kBoxTolerance * r.width, tol_y = detect::kBoxTolerance * r.height;
      if (!(w > 0 && h > 0)) {
        problems.add(where, "bbox " + bbox.dump() + " has no area (w and h must be > 0)");
        continue;
      }
      if (x < -tol_x || y < -tol_y || x + w > r.width + tol_x || y + h > r.height + tol_y) {
        problems.add(where, "bbox " + bbox.dump() + " reaches outside the " + std::to_string(r.width) + "x" +
                                std::to_string(r.height) + " image " + data::quoted(r.image));
        continue;
      }
      auto clip = [](double v, int size) { return static_cast<float>(std::clamp(v, 0.0, static_cast<double>(size))); };
      r.boxes.push_back({class_of[category], clip(x, r.width), clip(y, r.height), clip(x + w, r.width), clip(y + h, r.height)});
      ++summary.boxes;
    }
    problems.throw_if_any();
    summary.images = static_cast<int64_t>(records.size());
    for (const auto& r : records) summary.background += r.boxes.empty();
    return std::make_shared<DetectionDataset>(std::move(records), std::move(names), summary, source, options);
  } catch (const json::exception& e) {
    throw DataError(source + ": " + e.what());
  }
}

}  // namespace onnxtrain
