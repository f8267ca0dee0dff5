# Precompiled headers (ONNXTRAIN_PCH): the standard and third-party headers most of our files
# include, parsed once per target instead of once per file. Files still include what they
# use (the PCH only makes that cheaper; the install label compiles every public header alone,
# and unit.layering reads the sources, not this list).

# Standard headers included by more than a tenth of the files.
set(ONNXTRAIN_PCH_STD <algorithm> <cmath> <cstdint> <cstdio> <cstring> <filesystem> <fstream> <functional>
    <limits> <map> <memory> <optional> <set> <sstream> <string> <unordered_map> <vector>)

# The library: oneDNN's C++ API (most kernel files) on top of the standard headers.
function(onnxtrain_library_pch target)
  if(NOT ONNXTRAIN_PCH)
    return()
  endif()
  target_precompile_headers(${target} PRIVATE ${ONNXTRAIN_PCH_STD} <oneapi/dnnl/dnnl.hpp>)
endfunction()

# The tests: one PCH (gtest) built with onnxtrain_test_support and reused by every test
# executable, which all compile with its flags.
function(onnxtrain_test_pch_base target)
  if(NOT ONNXTRAIN_PCH)
    return()
  endif()
  target_precompile_headers(${target} PRIVATE ${ONNXTRAIN_PCH_STD} <gtest/gtest.h>)
endfunction()
function(onnxtrain_test_pch target)
  if(NOT ONNXTRAIN_PCH)
    return()
  endif()
  target_precompile_headers(${target} REUSE_FROM onnxtrain_test_support)
endfunction()

# The CLI: CLI11 (header-only) and nlohmann/json, for its modules and main.cpp.
function(onnxtrain_cli_pch library executable)
  if(NOT ONNXTRAIN_PCH)
    return()
  endif()
  target_precompile_headers(${library} PRIVATE ${ONNXTRAIN_PCH_STD} <CLI/CLI.hpp> <nlohmann/json.hpp>)
  target_precompile_headers(${executable} REUSE_FROM ${library})
endfunction()
