#pragma once
// Every sample of a dataset once, in order, in batches: what evaluation and validation
// iterate over (no shuffling, no augmentation, the last batch possibly smaller).
#include <cstdint>
#include <functional>

#include "onnxtrain/data.h"

namespace onnxtrain {

// Calls `fn(batch, first)` per batch; `first` is the index of the batch's first sample.
void for_each_batch(const DatasetPtr& data, int64_t batch_size, const std::function<void(Batch&, int64_t first)>& fn);

}  // namespace onnxtrain
