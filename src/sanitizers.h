#pragma once
// Whether this build runs under AddressSanitizer or ThreadSanitizer, for the code and tests
// whose behaviour or measurements differ there. GCC names the sanitizers with macros, clang
// with __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define ONNXTRAIN_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ONNXTRAIN_ASAN 1
#endif
#endif
#ifndef ONNXTRAIN_ASAN
#define ONNXTRAIN_ASAN 0
#endif

#if defined(__SANITIZE_THREAD__)
#define ONNXTRAIN_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define ONNXTRAIN_TSAN 1
#endif
#endif
#ifndef ONNXTRAIN_TSAN
#define ONNXTRAIN_TSAN 0
#endif
