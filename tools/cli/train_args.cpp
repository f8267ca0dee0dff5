#include "tools/cli/train_args.h"

#include <filesystem>

#include "onnxtrain/option_fields.h"

namespace onnxtrain::cli {

namespace fs = std::filesystem;

void add_data_flags(CLI::App* cmd, DataArgs& a, bool training) {
  cmd->add_option("--label", a.label, "Name of the label array / the target the loss reads (default: label)");
  cmd->add_option("--label-column", a.label_column, "CSV: column holding the labels (name or 0-based index; default: 'label', else the last)");
  cmd->add_option("--image-size", a.image_size, "Images: crop size H[,W] for models whose input size is not fixed")
      ->delimiter(',')->expected(1, 2);
  cmd->add_option("--resize", a.resize, "Images: resize the shorter side to this before cropping (default: the crop size)");
  cmd->add_option("--mean", a.mean, "Images: per-channel mean for normalisation (default: ImageNet for RGB, 0 for gray)")->delimiter(',');
  cmd->add_option("--std", a.std, "Images: per-channel std for normalisation (default: ImageNet for RGB, 1 for gray)")->delimiter(',');
  if (training) cmd->add_flag("--augment", a.augment, "Images: random crop and horizontal flip while training");
}

TrainingOptions TrainingFlags::cli_defaults() {
  TrainingOptions o;
  o.optimizer.kind = "adam";
  o.optimizer.lr = 1e-3;
  return o;
}

namespace {

// `--optimizer momentum`: sgd with momentum 0.9 unless --momentum says otherwise.
constexpr const char* kMomentumAlias = "momentum";

// The --help text of a row: its description, then each allowed value with its own (the
// IsMember check lists the names).
std::string help_of(std::string_view description, const ChoiceList* choices, const std::vector<Choice>& extra = {}) {
  std::string help(description);
  if (!choices) return help;
  auto line = [&](const Choice& c) { help += "\n    " + std::string(c.name) + ": " + std::string(c.description); };
  for (const Choice& c : choices->choices()) line(c);
  for (const Choice& c : extra) line(c);
  return help;
}

// One flag per row of `fields`, bound to its member of `values` (optional fields: to
// `optionals[flag]`); rows whose flag the command declares itself are skipped. `aliases` are
// further values the command line accepts for the "kind" row.
template <typename Options>
void add_field_flags(CLI::App* cmd, std::span<const OptionField<Options>> fields, Options& values,
                     std::map<std::string, double, std::less<>>& optionals, const std::vector<Choice>& aliases = {}) {
  for_each_field(fields, values, [&](const auto& row, auto& value) {
    if (row.command_flag) return;
    using T = std::decay_t<decltype(value)>;
    const std::string flag(row.flag);
    const std::vector<Choice> extra = row.key == "kind" ? aliases : std::vector<Choice>{};
    const std::string help = help_of(row.description, row.choices, extra);
    CLI::Option* o = nullptr;
    if constexpr (std::is_same_v<T, bool>) o = cmd->add_flag(flag, value, help);
    else if constexpr (std::is_same_v<T, std::optional<double>>) o = cmd->add_option(flag, optionals[flag], help);
    else o = cmd->add_option(flag, value, help);
    if constexpr (std::is_same_v<T, std::vector<double>> || std::is_same_v<T, std::vector<std::string>>)
      o->delimiter(',');
    if (row.choices) {
      std::vector<std::string> allowed = row.choices->names();
      for (const Choice& c : extra) allowed.emplace_back(c.name);
      o->check(CLI::IsMember(allowed));
    }
    if (row.check == FlagCheck::Positive) o->check(CLI::PositiveNumber);
    if (row.check == FlagCheck::ExistingFile) o->check(CLI::ExistingFile);
  });
}

// Each row's value: the flag's when given, else the base's (a training model's stored
// options) or, without a base, the flag's default.
template <typename Options>
void take_field_flags(const CLI::App& cmd, std::span<const OptionField<Options>> fields, const Options& values,
                      const std::map<std::string, double, std::less<>>& optionals, bool from_model, Options& out) {
  for (const auto& row : fields) {
    std::visit(
        [&](auto member) {
          using T = std::decay_t<decltype(out.*member)>;
          const std::string flag(row.flag);
          const CLI::Option* option = cmd.get_option_no_throw(flag);
          const bool given = option && option->count() > 0;
          if (!given) {
            if (!from_model) out.*member = values.*member;
          } else if constexpr (std::is_same_v<T, std::optional<double>>) {
            out.*member = optionals.at(flag);
          } else if (row.command_flag) {
            T v{};
            option->results(v);
            out.*member = v;
          } else {
            out.*member = values.*member;
          }
        },
        row.member);
  }
}

const std::vector<Choice> kOptimizerAliases{{kMomentumAlias, "sgd with momentum 0.9 (unless --momentum is given)"}};

}  // namespace

void add_loss_flags(CLI::App* cmd, TrainingFlags& a) {
  add_field_flags<LossOptions>(cmd, kLossFields, a.values.loss, a.optionals);
  add_field_flags<DetectionLossOptions>(cmd, kDetectionLossFields, a.values.loss.detection, a.optionals);
}

void add_optimizer_flags(CLI::App* cmd, TrainingFlags& a) {
  add_field_flags<OptimizerOptions>(cmd, kOptimizerFields, a.values.optimizer, a.optionals, kOptimizerAliases);
  cmd->add_option("--betas", a.betas, "Adam/AdamW betas, e.g. 0.9,0.999")->delimiter(',')->expected(2)
      ->excludes("--beta1")->excludes("--beta2");
  cmd->add_option("--scheduler", a.scheduler,
                  "constant | step:N:G | multistep:M1,M2:G | exponential:G | cosine[:MIN] | linear[:F] | onecycle[:MAX]");
  cmd->add_option("--warmup", a.warmup, "Linear warmup steps before the schedule");
  add_field_flags<TrainingOptions>(cmd, kTrainingFields, a.values, a.optionals);
}

TrainingOptions training_options(const CLI::App& cmd, const TrainingFlags& flags, std::optional<TrainingOptions> base) {
  const bool from_model = base.has_value();
  TrainingOptions o = base.value_or(TrainingOptions{});
  take_field_flags<LossOptions>(cmd, kLossFields, flags.values.loss, flags.optionals, from_model, o.loss);
  take_field_flags<DetectionLossOptions>(cmd, kDetectionLossFields, flags.values.loss.detection, flags.optionals,
                                         from_model, o.loss.detection);
  take_field_flags<OptimizerOptions>(cmd, kOptimizerFields, flags.values.optimizer, flags.optionals, from_model, o.optimizer);
  take_field_flags<TrainingOptions>(cmd, kTrainingFields, flags.values, flags.optionals, from_model, o);
  auto count = [&](const char* flag) { return cmd.count(flag) > 0; };
  if (count("--loss-model")) {
    if (count("--loss") && flags.values.loss.kind != "custom")
      throw DataError("--loss-model sets the loss; drop --loss " + flags.values.loss.kind);
    o.loss.kind = "custom";
  }
  auto& p = o.optimizer;
  if (p.kind == kMomentumAlias) {
    p.kind = "sgd";
    if (!count("--momentum")) p.momentum = 0.9;
  }
  if (count("--betas")) {
    p.beta1 = flags.betas.at(0);
    p.beta2 = flags.betas.at(1);
  }
  if (!from_model || count("--scheduler")) o.schedule = parse_schedule(flags.scheduler);
  if (count("--warmup")) o.schedule.warmup_steps = flags.warmup;
  if (p.nesterov && (p.kind != "sgd" || p.momentum <= 0))
    throw DataError("--nesterov needs --optimizer sgd (or momentum) with a momentum > 0");
  return o;
}

int static_dim(const ValueInfo& input, size_t axis) {
  if (axis >= input.dims.size()) return 0;
  const std::string& d = input.dims[axis];
  if (d.empty() || d.find_first_not_of("0123456789") != std::string::npos) return 0;
  return std::stoi(d);
}

ImageInput image_input(const std::string& path, const Model& model, const DataArgs& data) {
  const auto inputs = model.inputs();
  if (inputs.empty()) throw ModelError("the model has no inputs to feed");
  const ValueInfo& in = inputs.front();
  if (inputs.size() != 1 || in.dims.size() != 4)
    throw DataError(path + " is an image folder, which feeds one NCHW image input; the model's inputs are " +
                    std::to_string(inputs.size()) + ", the first " + in.name + in.shape_str());
  ImageInput o{in.name, static_dim(in, 1), static_dim(in, 2), static_dim(in, 3)};
  if (!data.image_size.empty()) {
    const int h = data.image_size[0], w = data.image_size.size() > 1 ? data.image_size[1] : h;
    if ((o.height && o.height != h) || (o.width && o.width != w))
      throw DataError("--image-size " + std::to_string(h) + "," + std::to_string(w) + " differs from the model input '" +
                      in.name + "' " + in.shape_str());
    o.height = h;
    o.width = w;
  }
  if (o.channels == 0) o.channels = 3;
  if (o.height == 0 || o.width == 0)
    throw DataError("the model input '" + in.name + "' " + in.shape_str() +
                    " does not fix the image size; give it with --image-size H[,W]");
  return o;
}

DatasetPtr open_dataset_for(const std::string& path, const Model& model, const DataArgs& data, const LossOptions& loss) {
  const LabelView label = label_view(loss, model);
  if (!fs::exists(path)) throw DataError(path + ": no such file or directory");
  const auto inputs = model.inputs();
  if (inputs.empty()) throw ModelError("the model has no inputs to feed");
  DatasetPtr raw;
  const std::string ext = fs::path(path).extension().string();
  if (fs::is_directory(path)) {
    const ImageInput in = image_input(path, model, data);
    ImageOptions o;
    o.input = in.name;
    o.label = label.name;
    o.channels = in.channels;
    o.height = in.height;
    o.width = in.width;
    o.resize_to = data.resize;
    o.crop = data.augment ? ImageOptions::Crop::Random : ImageOptions::Crop::Center;
    o.hflip = data.augment;
    o.mean = data.mean;
    o.std = data.std;
    raw = open_image_folder(path, o);
  } else if (ext == ".csv" || ext == ".tsv" || ext == ".txt") {
    if (inputs.size() != 1) throw DataError(path + ": a CSV file feeds one input; the model has " + std::to_string(inputs.size()));
    CsvOptions o;
    o.input = inputs.front().name;
    o.label = label.name;
    o.label_column = data.label_column;
    o.label_dtype = label.class_indices ? DType::Int64 : DType::Float;
    raw = open_csv(path, o);
  } else if (ext == ".npz" || ext == ".npy") {
    raw = open_arrays(path, ext == ".npy" ? inputs.front().name : "");
  } else {
    throw DataError(path + ": unknown data format '" + ext + "' (.npz, .npy, .csv or an image folder)");
  }
  return fit_to_model(raw, model, loss);
}

}  // namespace onnxtrain::cli
