#pragma once
// The library reports every failure as one of these exceptions, with enough context
// (node, op, opset, tensor, file) for a person to act on the message alone.
#include <stdexcept>
#include <string>

namespace onnxtrain {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The model file or graph is malformed or violates the ONNX spec.
class ModelError : public Error {
 public:
  using Error::Error;
};

// An operator (or an opset of it) has no kernel or no gradient rule.
class UnsupportedOp : public Error {
 public:
  using Error::Error;
};

// Shapes that do not fit together (inputs vs model, broadcasting, attributes).
class ShapeError : public Error {
 public:
  using Error::Error;
};

// User data that does not fit: wrong names, dtypes, unreadable files.
class DataError : public Error {
 public:
  using Error::Error;
};

// Training diverged: the loss of a step is NaN or infinite. The step's update was not
// applied, so the parameters are those after the previous step.
class NonFiniteLoss : public DataError {
 public:
  using DataError::DataError;
};

// A failure inside oneDNN or the operating system (allocation, I/O).
class BackendError : public Error {
 public:
  using Error::Error;
};

}  // namespace onnxtrain
