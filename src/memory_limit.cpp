#include "onnxtrain/memory_limit.h"

#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cstdio>
#include <cstdlib>

#include "onnxtrain/errors.h"

namespace onnxtrain {
namespace {

std::atomic<uint64_t> g_override{0};

uint64_t physical_ram() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
}

uint64_t parse_limit(const std::string& text) {
  size_t end = 0;
  unsigned long long value = 0;
  try {
    value = std::stoull(text, &end);
  } catch (const std::exception&) {
    end = 0;
  }
  std::string suffix = text.substr(end);
  if (!suffix.empty() && (suffix.back() == 'B' || suffix.back() == 'b')) suffix.pop_back();
  const std::string units = "KMGT";
  uint64_t scale = 1;
  if (suffix.size() == 1 && units.find(static_cast<char>(std::toupper(suffix[0]))) != std::string::npos)
    scale = uint64_t{1} << (10 * (units.find(static_cast<char>(std::toupper(suffix[0]))) + 1));
  else if (!suffix.empty())
    end = 0;
  if (end == 0 || value == 0 || value > UINT64_MAX / scale)
    throw DataError("ONNXTRAIN_MEMORY_LIMIT='" + text + "' is not a positive size in bytes (e.g. 4G, 512M, 1000000)");
  return value * scale;
}

std::string human(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1024 && u < 6) v /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u ? "%.1f %s" : "%.0f %s", v, units[u]);
  return buf;
}

}  // namespace

uint64_t memory_limit() {
  if (uint64_t o = g_override.load()) return o;
  const char* env = std::getenv("ONNXTRAIN_MEMORY_LIMIT");
  return env && *env ? parse_limit(env) : physical_ram();
}

void set_memory_limit(uint64_t bytes) { g_override.store(bytes); }

std::string memory_limit_problem(uint64_t bytes, const std::string& what) {
  const uint64_t limit = memory_limit();
  if (bytes <= limit) return {};
  return what + " needs " + std::to_string(bytes) + " bytes (" + human(bytes) + "), more than the memory limit of " +
         human(limit) + " (physical RAM, or ONNXTRAIN_MEMORY_LIMIT)";
}

}  // namespace onnxtrain
