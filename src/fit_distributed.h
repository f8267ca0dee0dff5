#pragma once
// The Trainer across ranks (FitOptions::distributed): the slice of the validation data a
// rank evaluates, and the evaluation of the whole set from every rank's part.
#include "onnxtrain/distributed.h"
#include "onnxtrain/trainer.h"

namespace onnxtrain {

// Samples [r*V/N, (r+1)*V/N) of `val` (all of it for one process). DataError when some
// rank would get none.
DatasetPtr validation_shard(DatasetPtr val, const Distributed& world);

// Every rank passes its part's evaluation and gets the whole set's: losses and metrics
// weighted by what they count, confusion counts added.
Evaluation combine_evaluations(Distributed& world, Evaluation part);

}  // namespace onnxtrain
