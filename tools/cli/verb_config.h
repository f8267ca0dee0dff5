#pragma once
#include <CLI/CLI.hpp>

namespace onnxtrain::cli {

// Config files name a verb's options without a section ("lr = 0.01"), like the config.toml a
// training run writes; CLI11 reads files at the top level, so such keys go to the verb
// given on the command line.
class VerbConfig : public CLI::ConfigTOML {
 public:
  explicit VerbConfig(const CLI::App& app) : app_(app) {}
  std::vector<CLI::ConfigItem> from_config(std::istream& input) const override {
    auto items = CLI::ConfigTOML::from_config(input);
    const auto verbs = app_.get_subcommands();
    if (verbs.empty()) return items;
    for (auto& item : items)
      if (item.parents.empty() || (item.parents.size() == 1 && item.parents[0].empty())) item.parents = {verbs.front()->get_name()};
    return items;
  }

 private:
  const CLI::App& app_;
};

}  // namespace onnxtrain::cli
