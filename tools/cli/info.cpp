// `onnxtrain info MODEL`: what a model needs and whether onnxtrain can run it.
#include <algorithm>
#include <cstdio>
#include <iostream>

#include "onnxtrain/onnxtrain.h"
#include "tools/cli/commands.h"
#include "tools/cli/format.h"

namespace onnxtrain::cli {

namespace {

void print_missing(const char* label, const char* all_good, const char* problem,
                   const std::map<std::string, std::vector<std::string>>& missing) {
  if (missing.empty()) {
    std::cout << label << all_good << "\n";
    return;
  }
  std::cout << label << missing.size() << " operator(s) " << problem << ":\n";
  for (const auto& [op, nodes] : missing) {
    std::cout << "  " << op << ": " << nodes.size() << " node(s)";
    for (size_t i = 0; i < nodes.size() && i < 5; ++i) std::cout << (i ? ", " : " ") << nodes[i];
    std::cout << (nodes.size() > 5 ? ", ...\n" : "\n");
  }
}

// One line on the detection head, or on why there is none when the outputs look like grids
// (rank 4 or 5); nothing for classifiers and other models.
void print_detection_head(const Model& model, const ModelInfo& info) {
  try {
    const std::string line = detect_head(model).describe();  // before printing: it may throw
    std::cout << "detection head: " << line << "\n";
  } catch (const ModelError& e) {
    const bool spatial = std::any_of(info.outputs.begin(), info.outputs.end(),
                                     [](const ValueInfo& v) { return v.dims.size() == 4 || v.dims.size() == 5; });
    std::string why = e.what();
    if (why.starts_with("no detection head: ")) why = why.substr(19);
    if (spatial) std::cout << "detection head: none — " << why << "\n";
  }
}

}  // namespace

Command add_info_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("info", "Show a model's inputs, outputs, opsets, parameters and operators");
  auto model_path = std::make_shared<std::string>();
  cmd->add_option("model", *model_path, "ONNX model file")->required()->check(CLI::ExistingFile);
  return {cmd, [model_path]() {
    Model model = Model::load(*model_path);
    ModelInfo info = model.info();
    std::cout << "model:      " << info.source << "\n";
    if (!info.producer.empty()) std::cout << "producer:   " << info.producer << "\n";
    std::cout << "ir version: " << info.ir_version << "\nopsets:    ";
    for (const auto& [domain, version] : info.opsets)
      std::cout << " " << (domain.empty() ? "ai.onnx" : domain) << " " << version;
    if (!info.newer_opset_ops.empty()) {
      std::cout << "\nnewer ops:  ";
      bool first = true;
      for (const auto& [op, since] : info.newer_opset_ops) {
        std::cout << (first ? "" : ", ") << op << " (opset " << since << " form)";
        first = false;
      }
    }
    std::cout << "\ninputs:\n";
    for (const auto& v : info.inputs) std::cout << "  " << pad(v.name, 24) << dtype_name(v.dtype) << v.shape_str() << "\n";
    std::cout << "outputs:\n";
    for (const auto& v : info.outputs) std::cout << "  " << pad(v.name, 24) << dtype_name(v.dtype) << v.shape_str() << "\n";
    if (!info.batch_note.empty()) std::cout << "batch:      " << info.batch_note << "\n";
    print_detection_head(model, info);
    std::cout << "parameters: " << thousands(info.parameter_count) << " (" << human_bytes(info.parameter_bytes)
              << ") in " << info.initializer_count << " initializers\n";
    int nodes = 0;
    for (const auto& [op, count] : info.op_histogram) nodes += count;
    std::cout << "operators:  " << nodes << " nodes, " << info.op_histogram.size() << " types\n";
    for (const auto& [op, count] : info.op_histogram) std::cout << "  " << pad(op, 28) << count << "\n";
    print_missing("kernels:    ", "every operator has a kernel", "have no kernel", info.missing_kernels);
    print_missing("gradients:  ", "every float operator has a gradient rule", "have no gradient rule",
                  info.missing_gradients);
    return 0;
  }};
}

}  // namespace onnxtrain::cli
