#include "fuzz/fuzz_inputs.h"

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/train_args.h"
#include "tools/cli/verb_config.h"

namespace onnxtrain::fuzz {
namespace {

namespace fs = std::filesystem;

// A scratch directory of this process (readers under test take paths), removed at exit.
const fs::path& scratch() {
  static const fs::path dir = [] {
    fs::path d = fs::temp_directory_path() / ("onnxtrain-fuzz-" + std::to_string(getpid()));
    fs::create_directories(d);
    std::atexit([] { std::error_code ec; fs::remove_all(fs::temp_directory_path() / ("onnxtrain-fuzz-" + std::to_string(getpid())), ec); });
    return d;
  }();
  return dir;
}

std::string write_scratch(const fs::path& relative, std::string_view bytes) {
  const fs::path path = scratch() / relative;
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary | std::ios::trunc).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return path.string();
}

// Imports the bytes as a model file in a directory of its own, beside one small external
// data file: a location must resolve inside that directory ("../secret" must not read it).
void model_import(std::string_view bytes) {
  static const std::string secret = write_scratch("secret.bin", std::string(64, 's'));
  write_scratch("model/weights.bin", std::string(256, '\1'));
  const std::string path = write_scratch("model/model.onnx", bytes);
  try {
    Model m = Model::load(path);
    (void)m.info();
  } catch (const Error&) {
  }
  try {
    (void)Model::from_bytes(bytes.data(), bytes.size());
  } catch (const Error&) {
  }
}

void arrays(std::string_view bytes) {
  // The same bytes as .npy (parse_npy) and as an .npz archive (zip, zip64, deflate).
  try {
    (void)parse_npy(std::string(bytes), "fuzz input");
  } catch (const Error&) {
  }
  try {
    (void)read_arrays(write_scratch("arrays.npz", bytes));
  } catch (const Error&) {
  }
}

void csv(std::string_view bytes) {
  const std::string path = write_scratch("data.csv", bytes);
  for (DType label : {DType::Int64, DType::Float}) {
    try {
      CsvOptions options;
      options.label_dtype = label;
      DatasetPtr data = open_csv(path, options);
      if (data->size() > 0) {
        const int64_t idx[] = {0, data->size() - 1};
        (void)data->batch(idx);
      }
    } catch (const Error&) {
    }
  }
}

// An image folder with one class and one image: open (reads the header), then decode,
// resize and crop, with and without augmentation.
void image(std::string_view bytes) {
  write_scratch("images/cls/a.png", bytes);
  for (int channels : {1, 3}) {
    try {
      ImageOptions options;
      options.channels = channels;
      options.height = options.width = 8;
      DatasetPtr data = open_image_folder((scratch() / "images").string(), options);
      const int64_t idx[] = {0};
      (void)data->batch(idx);
      BatchOptions augment;
      augment.augment = true;
      (void)data->batch(idx, augment);
    } catch (const Error&) {
    }
  }
}

// The TOML reader of `onnxtrain ... --config FILE` with the training verbs' data, loss and
// optimizer flags (the option tables), then their translation into TrainingOptions.
void config_toml(std::string_view bytes) {
  const std::string path = write_scratch("config.toml", bytes);
  CLI::App app{"onnxtrain"};
  app.require_subcommand(1);
  app.fallthrough();
  app.set_config("--config");
  app.config_formatter(std::make_shared<cli::VerbConfig>(app));
  CLI::App* train = app.add_subcommand("train");
  cli::DataArgs data;
  cli::TrainingFlags flags;
  cli::add_data_flags(train, data, /*training=*/true);
  cli::add_loss_flags(train, flags);
  cli::add_optimizer_flags(train, flags);
  const char* argv[] = {"onnxtrain", "train", "--config", path.c_str()};
  try {
    app.parse(4, argv);
    (void)cli::training_options(*train, flags, std::nullopt);
  } catch (const CLI::Error&) {
  } catch (const Error&) {
  }
}

// A session on a 4 -> 3 linear model loads the bytes as its checkpoint.
void checkpoint(std::string_view bytes) {
  static Model model = Model::from_text(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    g (float[N, 4] X) => (float[N, 3] Y)
    <float[4, 3] W = {0.1, -0.2, 0.3, 0.4, 0.5, -0.6, 0.7, 0.8, -0.9, 1.0, 1.1, 1.2}, float[3] b = {0.1, 0.2, 0.3}>
    { H = MatMul(X, W) Y = Add(H, b) }
  )");
  static TrainingSession session = [] {
    TrainingOptions options;
    options.loss.kind = "mse";
    options.optimizer.kind = "adam";
    return TrainingSession(model, options);
  }();
  const std::string path = write_scratch("checkpoint.npz", bytes);
  try {
    (void)session.load_checkpoint(path);
  } catch (const Error&) {
  }
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {{"model_import", model_import}, {"arrays", arrays},
                                          {"csv", csv},                   {"image", image},
                                          {"config_toml", config_toml},   {"checkpoint", checkpoint}};
  return all;
}

const Target& target(std::string_view name) {
  for (const Target& t : targets())
    if (name == t.name) return t;
  throw std::invalid_argument("no fuzz target named '" + std::string(name) + "'");
}

void limit_memory() { set_memory_limit(uint64_t{256} << 20); }

}  // namespace onnxtrain::fuzz
