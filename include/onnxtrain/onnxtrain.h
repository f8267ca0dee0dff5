#pragma once
// The public API of onnxtrain: the only header tools, examples and users include.
#include "onnxtrain/atomic_file.h"
#include "onnxtrain/clipping.h"
#include "onnxtrain/data.h"
#include "onnxtrain/errors.h"
#include "onnxtrain/metrics.h"
#include "onnxtrain/model.h"
#include "onnxtrain/npy.h"
#include "onnxtrain/operators.h"
#include "onnxtrain/schedule.h"
#include "onnxtrain/tensor.h"
#include "onnxtrain/training.h"
