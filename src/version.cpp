// onnxtrain::version(): the version this library was built as (its own copy of the macro).
#include "onnxtrain/version.h"

namespace onnxtrain {

const char* version() noexcept { return ONNXTRAIN_VERSION_STRING; }

}  // namespace onnxtrain
