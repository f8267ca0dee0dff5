#pragma once
// Random batches shaped for a model and its loss, for benchmarks and smoke tests: no data
// files needed, the same seed gives the same batch.
#include <cstdint>
#include <map>
#include <string>

#include "onnxtrain/model.h"
#include "onnxtrain/training.h"

namespace onnxtrain {

// One array per model input plus the loss's target (LossOptions::target), `batch_size`
// samples each. A symbolic first dim becomes `batch_size`; any other symbolic dim of an
// input or of the output the loss reads throws DataError (it has no size to choose).
// Float inputs: standard normal. Integer inputs: ids in [0, rows) when every Gather that
// reads them indexes an initializer (an embedding with `rows` rows), else 0 or 1. Targets:
// class indices in [0, C) for cross_entropy and nll (C = the output's dim 1), 0/1 for
// bce_with_logits, positive values for kl_div, standard normal for the other losses; a
// custom loss's extra targets are not covered (DataError).
std::map<std::string, Tensor> synthetic_batch(const Model& model, const LossOptions& loss, int64_t batch_size,
                                              uint64_t seed = 0);

}  // namespace onnxtrain
