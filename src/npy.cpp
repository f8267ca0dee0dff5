#include "onnxtrain/npy.h"
// Placeholder until the npy/npz reader lands.
