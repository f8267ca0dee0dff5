// Detection heads: recognising a YOLOv5- or YOLOv8-style head in a model's outputs, and
// decoding its raw outputs into candidate detections (Ultralytics' Detect.forward at
// inference, before NMS).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "graph/ir.h"
#include "graph/loss.h"
#include "onnxtrain/detection.h"
#include "onnxtrain/errors.h"
#include "onnxtrain/model.h"

namespace onnxtrain {

namespace {

std::string type_of(const graph::Value* v) { return dtype_name(v->dtype) + (v->dims ? graph::dims_str(*v->dims) : "[?]"); }

struct Level {
  const graph::Value* value;
  int64_t h, w;
};

std::string shapes(const std::vector<const graph::Value*>& outputs) {
  std::string s;
  for (const auto* v : outputs) s += (s.empty() ? "" : ", ") + v->name + " " + type_of(v);
  return s;
}

// yolov5 C for the levels with A anchors, or 0 when the channels do not fit.
int64_t v5_classes(const std::vector<Level>& levels, int64_t a, bool split) {
  int64_t classes = 0;
  for (const Level& l : levels) {
    const graph::Dims& d = *l.value->dims;
    int64_t c = 0;
    if (split && d[1].value == a && d[4].known()) c = d[4].value - 5;
    if (!split && d[1].known() && d[1].value % a == 0) c = d[1].value / a - 5;
    if (c < 1 || (classes && c != classes)) return 0;
    classes = c;
  }
  return classes;
}

int64_t v8_classes(const std::vector<Level>& levels, int64_t reg_max) {
  int64_t classes = 0;
  for (const Level& l : levels) {
    const graph::Dims& d = *l.value->dims;
    const int64_t c = d.size() == 4 && d[1].known() ? d[1].value - 4 * reg_max : 0;
    if (c < 1 || (classes && c != classes)) return 0;
    classes = c;
  }
  return classes;
}

double sigmoid(double x) { return 1 / (1 + std::exp(-x)); }

Box corners(double cx, double cy, double w, double h, const DetectionHead& head, int64_t cls) {
  const double iw = static_cast<double>(head.input_width), ih = static_cast<double>(head.input_height);
  return {cls, static_cast<float>((cx - w / 2) / iw), static_cast<float>((cy - h / 2) / ih),
          static_cast<float>((cx + w / 2) / iw), static_cast<float>((cy + h / 2) / ih)};
}

}  // namespace

std::string DetectionHead::describe() const {
  std::ostringstream s;
  s << kind << " " << layout << ", " << outputs.size() << " levels (";
  for (size_t i = 0; i < outputs.size(); ++i) s << (i ? ", " : "") << outputs[i];
  s << ") at strides ";
  for (size_t i = 0; i < strides.size(); ++i) s << (i ? ", " : "") << strides[i];
  s << ", " << num_classes << " classes, input " << input_height << "x" << input_width;
  if (kind == "yolov8") s << ", reg_max " << reg_max;
  if (kind == "yolov5")
    s << ", " << anchors_per_level << " anchors per level" << (anchors.empty() ? " (values unknown: pass --anchors)" : "");
  return s.str();
}

DetectionHead detect_head(const Model& model, const DetectionHeadHints& hints) {
  if (hints.kind != "auto" && hints.kind != "yolov5" && hints.kind != "yolov8")
    throw DataError("detection head kind must be auto, yolov5 or yolov8, got '" + hints.kind + "'");
  const graph::Graph& g = model.graph();
  DetectionHead head;
  for (const graph::Value* v : g.inputs) {
    if (v->kind != graph::ValueKind::Input || !v->dims || v->dims->size() != 4) continue;
    if (!(*v->dims)[2].known() || !(*v->dims)[3].known())
      throw ModelError("no detection head: the input '" + v->name + "' " + type_of(v) +
                       " has no fixed height and width, so the output grids and strides are unknown; export the "
                       "model at a fixed input size");
    head.input_height = (*v->dims)[2].value;
    head.input_width = (*v->dims)[3].value;
    break;
  }
  if (!head.input_height) throw ModelError("no detection head: the model has no image input [N, C, H, W]");

  std::vector<const graph::Value*> outputs(g.outputs.begin(), g.outputs.end());
  std::vector<Level> levels;
  for (const graph::Value* v : outputs) {
    if (!hints.outputs.empty() && std::find(hints.outputs.begin(), hints.outputs.end(), v->name) == hints.outputs.end())
      continue;
    const bool spatial = v->dims && (v->dims->size() == 4 || v->dims->size() == 5) && (*v->dims)[2].known() &&
                         (*v->dims)[3].known();
    if (!spatial) {
      if (!hints.outputs.empty()) throw ModelError("no detection head: the output '" + v->name + "' " + type_of(v) + " is not [N, C, H, W] or [N, A, H, W, 5+C]");
      continue;
    }
    levels.push_back({v, (*v->dims)[2].value, (*v->dims)[3].value});
  }
  for (const std::string& name : hints.outputs)
    if (std::none_of(levels.begin(), levels.end(), [&](const Level& l) { return l.value->name == name; }))
      throw ModelError("no detection head: '" + name + "' is not an output of the model (" + shapes(outputs) + ")");
  if (hints.outputs.empty()) {
    if (levels.size() < 2)
      throw ModelError("no detection head: a YOLO head has one spatial output per level, 2 or more; the outputs are " +
                       shapes(outputs));
    std::stable_sort(levels.begin(), levels.end(), [](const Level& a, const Level& b) { return a.h > b.h; });
  } else {
    std::sort(levels.begin(), levels.end(), [&](const Level& a, const Level& b) {
      return std::find(hints.outputs.begin(), hints.outputs.end(), a.value->name) <
             std::find(hints.outputs.begin(), hints.outputs.end(), b.value->name);
    });
  }
  const size_t rank = levels.front().value->dims->size();
  for (const Level& l : levels) {
    if (head.input_height % l.h != 0 || head.input_width % l.w != 0 ||
        head.input_height / l.h != head.input_width / l.w || l.value->dims->size() != rank)
      throw ModelError("no detection head: the output '" + l.value->name + "' " + type_of(l.value) +
                       " is not a grid of the " + std::to_string(head.input_height) + "x" +
                       std::to_string(head.input_width) + " input with one stride in H and W (outputs: " +
                       shapes(outputs) + ")");
    head.outputs.push_back(l.value->name);
    head.strides.push_back(head.input_height / l.h);
  }

  const auto metadata = model.metadata();
  std::vector<double> anchors = hints.anchors.empty() ? graph::anchors_from_metadata(metadata) : hints.anchors;
  const int64_t named = hints.num_classes ? hints.num_classes : static_cast<int64_t>(detection_class_names(model).size());
  const auto n_levels = static_cast<int64_t>(levels.size());
  const bool split = rank == 5;
  int64_t a = split ? (*levels.front().value->dims)[1].value : 3;
  if (!split && !anchors.empty()) {
    if (anchors.size() % (2 * levels.size()) != 0)
      throw ModelError("no detection head: " + std::to_string(anchors.size()) + " anchor values do not split into " +
                       std::to_string(n_levels) + " levels of (w, h) pairs");
    a = static_cast<int64_t>(anchors.size()) / (2 * n_levels);
  }
  const int64_t c5 = hints.kind == "yolov8" ? 0 : v5_classes(levels, a, split);
  const int64_t c8 = hints.kind == "yolov5" || split ? 0 : v8_classes(levels, hints.reg_max);
  const bool v5 = c5 && (!named || c5 == named), v8 = c8 && (!named || c8 == named);
  if (!v5 && !v8) {
    std::string why = "no detection head: the outputs " + shapes(outputs) + " fit neither ";
    why += split ? "[N, A, H, W, 5+C]" : "yolov5 [N, A*(5+C), H, W] with A = " + std::to_string(a) +
                                            " nor yolov8 [N, 4*" + std::to_string(hints.reg_max) + " + C, H, W]";
    if (named) why += " with C = " + std::to_string(named) + " classes (from the metadata \"names\" or the hint)";
    throw ModelError(why);
  }
  head.layout = split ? "split" : "flat";
  if (v5 && (!v8 || !anchors.empty())) {
    head.kind = "yolov5";
    head.num_classes = c5;
    head.anchors_per_level = a;
    if (!anchors.empty() && static_cast<int64_t>(anchors.size()) != 2 * a * n_levels)
      throw ModelError("no detection head: " + std::to_string(anchors.size()) + " anchor values for " +
                       std::to_string(n_levels) + " levels of " + std::to_string(a) + " anchors");
    head.anchors.assign(anchors.begin(), anchors.end());
  } else {
    head.kind = "yolov8";
    head.num_classes = c8;
    head.reg_max = hints.reg_max;
  }
  return head;
}

std::vector<std::vector<Detection>> decode_detections(const DetectionHead& head, const std::vector<Tensor>& level_outputs,
                                                      double conf_threshold) {
  if (level_outputs.size() != head.outputs.size())
    throw DataError("decode_detections: " + std::to_string(level_outputs.size()) + " outputs for a head of " +
                    std::to_string(head.outputs.size()) + " levels");
  if (head.kind == "yolov5" && head.anchors.empty())
    throw DataError("decode_detections: the yolov5 head has no anchor values; pass them (--anchors)");
  const int64_t n = level_outputs.empty() ? 0 : level_outputs.front().dim(0);
  std::vector<std::vector<Detection>> out(static_cast<size_t>(n));
  const int64_t c = head.num_classes;
  for (size_t l = 0; l < level_outputs.size(); ++l) {
    const Tensor& t = level_outputs[l];
    const std::vector<double> x = t.as_double();
    const int64_t h = t.dim(2), w = t.dim(3);
    const double stride = static_cast<double>(head.strides[l]);
    if (head.kind == "yolov5") {
      const int64_t a = head.anchors_per_level, no = 5 + c;
      const bool split = head.layout == "split";
      if (t.numel() != n * a * no * h * w)
        throw DataError("decode_detections: output '" + head.outputs[l] + "' " + shape_str(t.shape()) + " does not fit the head");
      for (int64_t i = 0; i < n; ++i)
        for (int64_t ai = 0; ai < a; ++ai)
          for (int64_t y = 0; y < h; ++y)
            for (int64_t xi = 0; xi < w; ++xi) {
              const int64_t base = split ? (((i * a + ai) * h + y) * w + xi) * no : ((i * a + ai) * no * h + y) * w + xi;
              const int64_t step = split ? 1 : h * w;
              auto at = [&](int64_t k) { return x[static_cast<size_t>(base + k * step)]; };
              const double obj = sigmoid(at(4));
              if (obj <= conf_threshold) continue;
              const float* anchor = &head.anchors[(l * a + ai) * 2];
              const double aw = anchor[0], ah = anchor[1];
              const double cx = (sigmoid(at(0)) * 2 - 0.5 + static_cast<double>(xi)) * stride;
              const double cy = (sigmoid(at(1)) * 2 - 0.5 + static_cast<double>(y)) * stride;
              const double bw = std::pow(sigmoid(at(2)) * 2, 2) * aw, bh = std::pow(sigmoid(at(3)) * 2, 2) * ah;
              for (int64_t k = 0; k < c; ++k) {
                const double score = obj * sigmoid(at(5 + k));
                if (score > conf_threshold)
                  out[static_cast<size_t>(i)].push_back({i, corners(cx, cy, bw, bh, head, k), static_cast<float>(score)});
              }
            }
    } else {
      const int64_t r = head.reg_max, ch = 4 * r + c;
      if (t.numel() != n * ch * h * w)
        throw DataError("decode_detections: output '" + head.outputs[l] + "' " + shape_str(t.shape()) + " does not fit the head");
      std::vector<double> p(static_cast<size_t>(r));
      for (int64_t i = 0; i < n; ++i)
        for (int64_t y = 0; y < h; ++y)
          for (int64_t xi = 0; xi < w; ++xi) {
            auto at = [&](int64_t k) { return x[static_cast<size_t>(((i * ch + k) * h + y) * w + xi)]; };
            double best = 0;
            for (int64_t k = 0; k < c; ++k) best = std::max(best, sigmoid(at(4 * r + k)));
            if (best <= conf_threshold) continue;
            // DFL: the expected bin of each side's softmax, in grid units from the cell centre.
            double dist[4];
            for (int side = 0; side < 4; ++side) {
              double top = -INFINITY, sum = 0, expect = 0;
              for (int64_t b = 0; b < r; ++b) top = std::max(top, at(side * r + b));
              for (int64_t b = 0; b < r; ++b) {
                p[static_cast<size_t>(b)] = std::exp(at(side * r + b) - top);
                sum += p[static_cast<size_t>(b)];
              }
              for (int64_t b = 0; b < r; ++b) expect += static_cast<double>(b) * p[static_cast<size_t>(b)] / sum;
              dist[side] = expect;
            }
            const double ax = static_cast<double>(xi) + 0.5, ay = static_cast<double>(y) + 0.5;
            const double x1 = (ax - dist[0]) * stride, y1 = (ay - dist[1]) * stride;
            const double x2 = (ax + dist[2]) * stride, y2 = (ay + dist[3]) * stride;
            for (int64_t k = 0; k < c; ++k) {
              const double score = sigmoid(at(4 * r + k));
              if (score > conf_threshold)
                out[static_cast<size_t>(i)].push_back(
                    {i, corners((x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1, head, k), static_cast<float>(score)});
            }
          }
    }
  }
  return out;
}

std::vector<std::string> detection_class_names(const Model& model) {
  const auto metadata = model.metadata();
  const auto it = metadata.find("names");
  if (it == metadata.end()) return {};
  const std::string& text = it->second;
  std::vector<std::string> names;
  try {
    auto j = nlohmann::json::parse(text);
    if (j.is_array()) return j.get<std::vector<std::string>>();
    if (j.is_object()) {
      std::map<int64_t, std::string> by_id;
      for (const auto& [k, v] : j.items()) by_id[std::stoll(k)] = v.get<std::string>();
      for (const auto& [id, name] : by_id) names.push_back(name);
      return names;
    }
  } catch (const std::exception&) {
  }
  // Ultralytics: str() of a Python dict, e.g. {0: 'person', 1: "a 'quoted' name"}.
  std::map<int64_t, std::string> by_id;
  const std::regex entry(R"re((\d+)\s*:\s*(?:'([^']*)'|"([^"]*)"))re");
  for (auto m = std::sregex_iterator(text.begin(), text.end(), entry); m != std::sregex_iterator(); ++m)
    by_id[std::stoll((*m)[1])] = (*m)[2].matched ? (*m)[2].str() : (*m)[3].str();
  for (const auto& [id, name] : by_id) names.push_back(name);
  return names;
}

}  // namespace onnxtrain
