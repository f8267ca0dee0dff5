#pragma once
// What resize.cpp (Resize, Upsample) and grid_sample.cpp (GridSample) share: the
// interpolation mode and the enum-attribute parser.
#include <algorithm>
#include <cmath>
#include <optional>

#include "ops/gradient.h"
#include "ops/op_utils.h"
#include "ops/registry.h"

namespace onnxtrain::ops {

// grid_sample.cpp, called from register_resize_ops.
void register_grid_sample_ops(Registry& r);

namespace resize_impl {

enum class Mode { Nearest, Linear, Cubic };

template <typename E>
E parse_enum(const Node& node, const char* attr, const std::string& fallback,
             std::initializer_list<std::pair<const char*, E>> values) {
  std::string s = node.attr_string(attr, fallback);
  for (auto& [name, v] : values)
    if (s == name) return v;
  fail(node, std::string("unsupported ") + attr + " '" + s + "'");
}

}  // namespace resize_impl

}  // namespace onnxtrain::ops
