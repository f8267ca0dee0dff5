// The segmentation task of `onnxtrain train` and `eval` (see train_segment.h).
#include "tools/cli/train_segment.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <iostream>

#include "tools/cli/format.h"

namespace onnxtrain::cli {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kIgnore = 255;  // the ignore value of VOC/ADE-style class-id masks
constexpr int kOverlays = 4;       // validation images drawn at the end of a run

// Distinct colours for classes beyond a palette's (VOC's bit-interleaved scheme goes on).
Palette drawing_palette(Palette palette, int64_t classes) {
  const Palette voc = voc_palette();
  for (size_t i = palette.colors.size(); static_cast<int64_t>(i) < classes; ++i)
    palette.colors.push_back(i < voc.colors.size() ? voc.colors[i]
                                                   : Rgb{static_cast<uint8_t>(i * 67), static_cast<uint8_t>(i * 131),
                                                         static_cast<uint8_t>(i * 29)});
  return palette;
}

int64_t model_classes(const Model& model, const LossOptions& loss) {
  for (const auto& out : model.outputs())
    if (loss.output.empty() || out.name == loss.output) return static_dim(out, 1);
  return 0;
}

}  // namespace

void add_segment_flags(CLI::App* cmd, SegmentArgs& a, bool training) {
  cmd->add_option("--masks", a.masks, "--task segment: the mask folder of --data (same relative paths and stems)");
  if (training) cmd->add_option("--val-masks", a.val_masks, "--task segment: the mask folder of --val");
  cmd->add_option("--palette", a.palette,
                  "--task segment: colour masks through a palette: voc, or a file of 'R G B' lines (class order; "
                  "'ignore R G B')");
  cmd->add_option("--num-classes", a.num_classes, "--task segment: classes C (default: the model output's dim 1)")
      ->check(CLI::PositiveNumber);
}

void check_segment_flags(const std::string& task, const SegmentArgs& a) {
  if (task != "segment" && (!a.masks.empty() || !a.val_masks.empty() || !a.palette.empty() || a.num_classes))
    throw DataError("--masks, --val-masks, --palette and --num-classes need --task segment");
}

void segment_defaults(const CLI::App& cmd, LossOptions& loss, FitOptions* fit) {
  const CLI::Option* given = cmd.get_option_no_throw("--ignore-index");  // eval has no such flag
  if ((!given || given->count() == 0) && class_index_loss(loss.kind)) loss.ignore_index = kIgnore;
  if (!fit) return;
  if (fit->metric.empty()) fit->metric = "miou";
  for (const char* m : {"miou", "pixel_accuracy"})
    if (fit->metric != m) fit->extra_metrics.push_back(m);
}

SegmentData open_segment_data(const std::string& images, const std::string& masks, const SegmentArgs& args,
                              const DataArgs& data, const Model& model, const LossOptions& loss, bool augment) {
  if (masks.empty()) throw DataError("--task segment: give the mask folder of " + images + " (--masks / --val-masks)");
  if (!class_index_loss(loss.kind))
    throw DataError("--task segment trains on class masks; --loss " + loss.kind +
                    " does not take class indices (cross_entropy, nll, dice, cross_entropy_dice do)");
  const ImageInput in = image_input(images, model, data);
  if (in.channels != 3)
    throw DataError("--task segment feeds RGB images; the model input '" + in.name + "' has " +
                    std::to_string(in.channels) + " channels");
  const int64_t from_model = model_classes(model, loss);
  if (args.num_classes && from_model && args.num_classes != from_model)
    throw DataError("--num-classes " + std::to_string(args.num_classes) + " differs from the model output's " +
                    std::to_string(from_model) + " classes");
  SegmentationOptions o;
  o.height = in.height;
  o.width = in.width;
  o.images = in.name;
  o.mask = label_view(loss, model).name;
  o.num_classes = args.num_classes ? args.num_classes : from_model;
  o.ignore_index = loss.ignore_index;
  if (!args.palette.empty()) o.palette = read_palette(args.palette);
  if (!augment) o.scale_min = o.scale_max = 1, o.fliplr = 0, o.hsv_h = o.hsv_s = o.hsv_v = 0;
  SegmentData out;
  out.raw = open_segmentation(images, masks, o);
  out.fitted = fit_to_model(out.raw, model, loss);
  out.palette = drawing_palette(o.palette, o.num_classes);
  return out;
}

void write_segment_results(const FitResult& result, const SegmentData& val, const fs::path& run_dir,
                           const std::string& output, int threads) {
  if (result.validation && result.validation->confusion) {
    const ConfusionMatrix& m = *result.validation->confusion;
    std::string csv = "class,iou,pixels,predicted\n";
    for (int64_t c = 0; c < m.classes(); ++c) {
      const double iou = SegmentationMetric::class_iou(m, c);
      char number[32];
      std::snprintf(number, sizeof number, "%.6f", iou);
      csv += m.class_name(c) + "," + (std::isnan(iou) ? std::string() : number) + "," + std::to_string(m.support(c)) +
             "," + std::to_string(m.predicted_count(c)) + "\n";
    }
    write_file_atomically((run_dir / "per_class_iou.csv").string(), csv);
  }
  if (!val.raw || result.best_model.empty()) return;
  Model best = Model::load(result.best_model.string());
  InferenceSession session(best, SessionOptions{.threads = threads, .inference_mode = true});
  const SegmentationOptions& o = val.raw->options();
  const int h = o.height, w = o.width;
  for (int64_t i = 0; i < std::min<int64_t>(kOverlays, val.raw->size()); ++i) {
    const SegmentedImage s = val.raw->sample(i, {});
    Tensor input(DType::Float, {1, 3, h, w});
    std::copy(s.image.pixels.begin(), s.image.pixels.end(), input.data<float>());
    const Tensor scores = session.run({{o.images, input}}, {output}).at(output);
    const int64_t classes = scores.dim(1);
    const std::vector<double> v = scores.as_double();
    Mask predicted(h, w);
    for (int64_t p = 0; p < static_cast<int64_t>(h) * w; ++p) {
      int64_t best_class = 0;
      for (int64_t c = 1; c < classes; ++c)
        if (v[c * h * w + p] > v[best_class * h * w + p]) best_class = c;
      predicted.ids[p] = best_class;
    }
    write_png_row((run_dir / ("val_pred_" + std::to_string(i) + ".png")).string(),
                  {overlay_rgb(s.image, Mask(h, w, -1), val.palette), overlay_rgb(s.image, s.mask, val.palette),
                   overlay_rgb(s.image, predicted, val.palette)},
                  h, w);
  }
}

}  // namespace onnxtrain::cli
