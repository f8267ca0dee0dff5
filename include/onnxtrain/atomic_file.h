#pragma once
// The one way onnxtrain writes a file: models, checkpoints, arrays and the CLI's run files.
#include <string>
#include <string_view>

namespace onnxtrain {

// Writes `bytes` to a temporary file beside `path` (a name unique to this process and call,
// created exclusively, so concurrent writers never share one), flushes it to disk and
// renames it over `path`: readers see the old file or the new one, never a partial one.
// Throws BackendError naming the file (full disk, permissions, missing directory) and
// leaves any previous file and no temporary file behind.
void write_file_atomically(const std::string& path, std::string_view bytes);

}  // namespace onnxtrain
