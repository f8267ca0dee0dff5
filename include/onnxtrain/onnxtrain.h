#pragma once
// The public API of onnxtrain: the only header tools, examples and users include.
#include "onnxtrain/errors.h"
#include "onnxtrain/model.h"
#include "onnxtrain/npy.h"
#include "onnxtrain/operators.h"
#include "onnxtrain/tensor.h"
#include "onnxtrain/training.h"
