#pragma once
// How much onnxtrain logs (to stdout, as "[level] message").
namespace onnxtrain {

enum class LogLevel { Debug, Info, Warning, Error, Off };

// Messages below `level` are dropped; the default is Info.
void set_log_level(LogLevel level);

}  // namespace onnxtrain
