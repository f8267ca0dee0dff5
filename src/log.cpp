#include "onnxtrain/log.h"

#include <spdlog/spdlog.h>

namespace onnxtrain {

void set_log_level(LogLevel level) {
  // Without the timestamp of spdlog's default pattern: lines read like the tool's own output.
  spdlog::set_pattern("%^[%l]%$ %v");
  switch (level) {
    case LogLevel::Debug: spdlog::set_level(spdlog::level::debug); break;
    case LogLevel::Info: spdlog::set_level(spdlog::level::info); break;
    case LogLevel::Warning: spdlog::set_level(spdlog::level::warn); break;
    case LogLevel::Error: spdlog::set_level(spdlog::level::err); break;
    case LogLevel::Off: spdlog::set_level(spdlog::level::off); break;
  }
}

}  // namespace onnxtrain
