#pragma once
#include <string>
#include <string_view>

namespace onnxtrain {

// Writes `bytes` to a temporary file beside `path`, flushes it to disk and renames it over
// `path`: readers see the old file or the new one, never a partial one. Throws BackendError
// naming the file (full disk, permissions) and leaves any previous file untouched.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace onnxtrain
