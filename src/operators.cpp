#include "onnxtrain/operators.h"

#include <climits>

#include "ops/registry.h"

namespace onnxtrain {

std::vector<OperatorInfo> list_operators() {
  std::vector<OperatorInfo> out;
  for (const ops::OpDef* d : ops::Registry::instance().all()) {
    OperatorInfo info;
    info.domain = d->domain;
    info.op_type = d->op_type;
    info.since_version = d->since_version;
    info.until_version = d->until_version == INT_MAX ? 0 : d->until_version;
    info.backend = d->backend;
    info.gradient = d->not_differentiable ? "not differentiable" : d->gradient ? "yes" : "no";
    out.push_back(std::move(info));
  }
  return out;
}

}  // namespace onnxtrain
