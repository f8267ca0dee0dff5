// The detection loss kinds "yolov5" and "yolov8": one ai.onnxtrain loss node (YoloV5Loss,
// YoloV8Loss) that reads the head outputs level by level and the batch's boxes, and
// outputs the loss and its three weighted parts. The node does the target assignment on the
// host; its gradient rule feeds the head outputs only (docs/detection.md).
#include <nlohmann/json.hpp>

#include <algorithm>

#include "graph/loss.h"
#include "graph/loss_builder.h"
#include "onnxtrain/errors.h"

namespace onnxtrain::graph {

namespace {

std::string type_of(const Value* v) { return dtype_name(v->dtype) + (v->dims ? dims_str(*v->dims) : "[unknown shape]"); }

// The model's image input: its static H, W give the strides of the levels.
std::pair<int64_t, int64_t> image_size(const Graph& g) {
  for (const Value* v : g.inputs) {
    if (v->kind != ValueKind::Input || !v->dims || v->dims->size() != 4) continue;
    const Dim &h = (*v->dims)[2], &w = (*v->dims)[3];
    if (!h.known() || !w.known())
      throw ModelError("the detection loss needs a fixed input size, and the model input '" + v->name + "' is " +
                       type_of(v) + "; export the model with a fixed height and width (e.g. 640x640)");
    return {h.value, w.value};
  }
  throw ModelError("the detection loss needs an image input [N, 3, H, W]; the model has no input of rank 4");
}

int64_t level_height(const Value* v) {
  if (!v->dims || (v->dims->size() != 4 && v->dims->size() != 5) || !(*v->dims)[2].known() || !(*v->dims)[3].known())
    throw ModelError("the output '" + v->name + "' " + type_of(v) +
                     " is not a detection head level ([N, C, H, W] or [N, A, H, W, 5+C] with known H and W); name "
                     "the head outputs in level order with loss option 'outputs' (--outputs)");
  return (*v->dims)[2].value;
}

std::vector<Value*> head_outputs(Graph& g, const LossOptions& o) {
  std::vector<Value*> levels;
  if (o.outputs.empty()) {
    levels = g.outputs;
    // Stride ascending: the largest grid first, as Ultralytics orders P3, P4, P5.
    std::stable_sort(levels.begin(), levels.end(),
                     [](const Value* a, const Value* b) { return level_height(a) > level_height(b); });
  } else {
    for (const std::string& name : o.outputs) levels.push_back(model_output(g, name));
  }
  if (levels.empty()) throw ModelError("the model has no outputs to attach a detection loss to");
  for (const Value* v : levels) {
    level_height(v);
    if (!is_floating(v->dtype)) throw ModelError("the head output '" + v->name + "' must be float, it is " + type_of(v));
    if (v->dtype != levels.front()->dtype)
      throw ModelError("the head outputs must share one element type: '" + v->name + "' is " + type_of(v) + ", '" +
                       levels.front()->name + "' " + type_of(levels.front()));
  }
  return levels;
}

std::vector<float> floats(const std::vector<double>& v) { return {v.begin(), v.end()}; }

// C of a YOLOv5 head with A anchors per level: flat [N, A*(5+C), H, W] or split [N, A, H, W, 5+C].
int64_t v5_classes(const std::vector<Value*>& levels, int64_t anchors) {
  int64_t classes = -1;
  for (const Value* v : levels) {
    const Dims& d = *v->dims;
    int64_t c = -1;
    if (d.size() == 4 && d[1].known() && d[1].value % anchors == 0) c = d[1].value / anchors - 5;
    if (d.size() == 5 && d[1].value == anchors && d[4].known()) c = d[4].value - 5;
    if (c < 1 || (classes >= 0 && c != classes))
      throw ModelError("the head output '" + v->name + "' " + type_of(v) + " does not fit " + std::to_string(anchors) +
                       " anchors per level: expected [N, A*(5+C), H, W] or [N, A, H, W, 5+C] with A = " +
                       std::to_string(anchors) + " and the same C >= 1 on every level");
    classes = c;
  }
  return classes;
}

std::vector<double> v5_anchors(const LossOptions& o, const std::map<std::string, std::string>& metadata, size_t levels) {
  std::vector<double> anchors = o.detection.anchors;
  if (anchors.empty()) anchors = anchors_from_metadata(metadata);
  if (anchors.empty())
    throw DataError("loss yolov5 needs the anchors: give them in input pixels, level-major, with --anchors (the "
                    "YOLOv5 P3-P5 defaults are 10,13,16,30,33,23,30,61,62,45,59,119,116,90,156,198,373,326), or store "
                    "them in the model's metadata_props as \"anchors\" (a JSON list)");
  if (anchors.size() % (2 * levels) != 0)
    throw DataError("loss yolov5: " + std::to_string(anchors.size()) + " anchor values do not split into " +
                    std::to_string(levels) + " levels of (w, h) pairs");
  return anchors;
}

}  // namespace

std::vector<double> anchors_from_metadata(const std::map<std::string, std::string>& metadata) {
  auto it = metadata.find("anchors");
  if (it == metadata.end()) return {};
  std::vector<double> anchors;
  try {
    const nlohmann::json j = nlohmann::json::parse(it->second);
    for (const auto& item : j) {
      if (item.is_array())
        for (const auto& v : item) anchors.push_back(v.get<double>());
      else
        anchors.push_back(item.get<double>());
    }
  } catch (const nlohmann::json::exception& e) {
    throw ModelError("the model's metadata \"anchors\" is not a JSON list of numbers (or of lists of numbers): " +
                     std::string(e.what()));
  }
  return anchors;
}

std::string loss_target(const LossOptions& o) {
  return is_detection_loss(o.kind) && o.target == LossOptions{}.target ? "boxes" : o.target;
}

bool is_detection_loss(const std::string& kind) { return kind == "yolov5" || kind == "yolov8"; }

LossParts loss_parts(const Value& loss, const LossOptions& o) {
  if (!is_detection_loss(o.kind) || !loss.producer || !loss.producer->has_output(1)) return {};
  const std::vector<std::string> names =
      o.kind == "yolov5" ? std::vector<std::string>{"box", "obj", "cls"} : std::vector<std::string>{"box", "cls", "dfl"};
  return {loss.producer->outputs[1]->name, names};
}

Value* attach_detection_loss(Graph& g, const LossOptions& o, const std::map<std::string, std::string>& metadata) {
  const auto [height, width] = image_size(g);
  const std::vector<Value*> levels = head_outputs(g, o);
  const std::string target_name = loss_target(o);
  if (g.find_value(target_name))
    throw ModelError("the target name '" + target_name + "' is already a value of the model; choose another");
  Value* boxes = g.add_value(target_name, DType::Float, Dims{(*levels.front()->dims)[0], Dim{-1, "boxes"}, Dim{6, ""}});
  boxes->kind = ValueKind::Input;
  g.inputs.push_back(boxes);

  const DetectionLossOptions& d = o.detection;
  std::map<std::string, AttributeValue> attrs{{"image_size", std::vector<int64_t>{height, width}},
                                              {"box", static_cast<float>(d.box_gain(o.kind))},
                                              {"cls", static_cast<float>(d.cls)}};
  std::string op;
  if (o.kind == "yolov5") {
    op = "YoloV5Loss";
    const std::vector<double> anchors = v5_anchors(o, metadata, levels.size());
    const auto per_level = static_cast<int64_t>(anchors.size() / (2 * levels.size()));
    attrs["num_classes"] = v5_classes(levels, per_level);
    attrs["anchors"] = floats(anchors);
    attrs["layout"] = std::string(levels.front()->dims->size() == 5 ? "split" : "flat");
    attrs["obj"] = static_cast<float>(d.obj);
    attrs["anchor_t"] = static_cast<float>(d.anchor_t);
    attrs["label_smoothing"] = static_cast<float>(d.label_smoothing);
    if (!d.balance.empty()) attrs["balance"] = floats(d.balance);
  } else {
    op = "YoloV8Loss";
    int64_t classes = -1;
    for (const Value* v : levels) {
      const Dims& dims = *v->dims;
      const int64_t c = dims.size() == 4 && dims[1].known() ? dims[1].value - 4 * d.reg_max : -1;
      if (c < 1 || (classes >= 0 && c != classes))
        throw ModelError("the head output '" + v->name + "' " + type_of(v) + " does not fit a YOLOv8 head with reg_max " +
                         std::to_string(d.reg_max) + ": expected [N, 4*reg_max + C, H, W] with the same C >= 1 on every level");
      classes = c;
    }
    attrs["num_classes"] = classes;
    attrs["reg_max"] = d.reg_max;
    attrs["dfl"] = static_cast<float>(d.dfl);
    attrs["topk"] = d.topk;
    attrs["alpha"] = static_cast<float>(d.alpha);
    attrs["beta"] = static_cast<float>(d.beta);
  }
  std::vector<Value*> inputs{boxes};
  inputs.insert(inputs.end(), levels.begin(), levels.end());
  const DType dtype = levels.front()->dtype;
  Value* loss = g.add_value(g.unique_name("loss/" + o.kind), dtype, Dims{});
  Value* parts = g.add_value(g.unique_name("loss/" + o.kind + "_parts"), dtype, Dims{Dim{3, ""}});
  Node* n = g.add_node(op, inputs, {loss, parts}, kTrainingDomain, g.unique_name("loss/" + op));
  n->attributes = std::move(attrs);
  return loss;
}

}  // namespace onnxtrain::graph
