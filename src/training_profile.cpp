// TrainingSession's opt-in profile: the executor's per-node records grouped by op type and
// phase, with the layout conversions of each phase as a "Reorder" row.
#include <algorithm>
#include <map>

#include "src/training_session_impl.h"

namespace onnxtrain {

void TrainingSession::set_profiling(bool on) { impl_->executor->set_profiling(on); }

ProfileSummary TrainingSession::profile() const {
  const Impl& s = *impl_;
  std::map<std::pair<std::string, std::string>, OpProfile> rows;  // (phase, op type)
  auto row = [&](const std::string& phase, const std::string& op) -> OpProfile& {
    OpProfile& r = rows[{phase, op}];
    r.phase = phase;
    r.op_type = op;
    return r;
  };
  ProfileSummary summary;
  for (const auto& [node, p] : s.executor->profile()) {
    const std::string phase = s.forward_nodes.count(node)          ? "forward"
                              : s.backward_nodes_set.count(node) ? "backward"
                                                                 : "optimizer";
    OpProfile& r = row(phase, node->domain.empty() ? node->op_type : node->domain + "." + node->op_type);
    r.ms += p.ns * 1e-6;
    r.calls += p.calls;
    r.flops += p.flops;
    if (phase == "forward") summary.forward_flops += p.flops;
    if (p.reorder_ns) {
      OpProfile& reorder = row(phase, "Reorder");
      reorder.ms += p.reorder_ns * 1e-6;
      reorder.calls += p.calls;
    }
  }
  for (auto& [key, r] : rows) {
    summary.total_ms += r.ms;
    summary.ops.push_back(std::move(r));
  }
  std::sort(summary.ops.begin(), summary.ops.end(), [](const OpProfile& a, const OpProfile& b) { return a.ms > b.ms; });
  return summary;
}

}  // namespace onnxtrain
