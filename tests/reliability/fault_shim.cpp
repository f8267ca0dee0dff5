// LD_PRELOAD shim for the fault-injection tests: interposes libc's write paths of a child
// `onnxtrain` process without changing the code under test.
//   ONNXTRAIN_FAULT_KILL_AT=N      SIGKILL the process at its N-th file write event (write,
//                                  writev, fsync, fdatasync, rename, fwrite, fputs, fflush on
//                                  a descriptor other than stdin/out/err), before the call.
//   ONNXTRAIN_FAULT_ENOSPC_AFTER=B after B bytes written to files, writes fail with ENOSPC
//                                  (a short write first, as a full disk does), fsync too.
//   ONNXTRAIN_FAULT_COUNT=PATH     at exit, write "<events> <bytes written to files>" to PATH.
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace {

std::atomic<long> g_events{0};
std::atomic<long long> g_written{0};

long env_number(const char* name) {
  const char* v = std::getenv(name);
  return v && *v ? std::atol(v) : -1;
}

template <typename Fn>
Fn real(const char* name) {
  return reinterpret_cast<Fn>(dlsym(RTLD_NEXT, name));
}

// Counts one event on a file; dies here when it is the chosen one.
void event(int fd) {
  if (fd >= 0 && fd <= 2) return;
  static const long kill_at = env_number("ONNXTRAIN_FAULT_KILL_AT");
  if (++g_events == kill_at) raise(SIGKILL);
}

// Bytes of a `want`-byte write that still fit; -1 once the disk is full.
ssize_t budget(int fd, size_t want) {
  static const long long limit = env_number("ONNXTRAIN_FAULT_ENOSPC_AFTER");
  if (fd >= 0 && fd <= 2) return static_cast<ssize_t>(want);
  if (limit < 0) {
    g_written += static_cast<long long>(want);
    return static_cast<ssize_t>(want);
  }
  const long long used = g_written.load();
  if (used >= limit) {
    errno = ENOSPC;
    return -1;
  }
  const long long n = std::min<long long>(static_cast<long long>(want), limit - used);
  g_written += n;
  return static_cast<ssize_t>(n);
}

bool disk_full(int fd) {
  static const long long limit = env_number("ONNXTRAIN_FAULT_ENOSPC_AFTER");
  return limit >= 0 && fd > 2 && g_written.load() >= limit;
}

struct CountAtExit {
  ~CountAtExit() {
    if (const char* path = std::getenv("ONNXTRAIN_FAULT_COUNT")) {
      const int fd = ::open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
      if (fd < 0) return;
      char buf[64];
      const int n = std::snprintf(buf, sizeof buf, "%ld %lld\n", g_events.load(), g_written.load());
      static auto real_write = real<ssize_t (*)(int, const void*, size_t)>("write");
      real_write(fd, buf, static_cast<size_t>(n));
      ::close(fd);
    }
  }
} g_count_at_exit;

}  // namespace

extern "C" {

ssize_t write(int fd, const void* buf, size_t count) {
  static auto next = real<ssize_t (*)(int, const void*, size_t)>("write");
  event(fd);
  const ssize_t allowed = budget(fd, count);
  if (allowed < 0) return -1;
  return next(fd, buf, static_cast<size_t>(allowed));
}

ssize_t writev(int fd, const struct iovec* iov, int n) {
  static auto next = real<ssize_t (*)(int, const struct iovec*, int)>("writev");
  event(fd);
  if (disk_full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return next(fd, iov, n);
}

int fsync(int fd) {
  static auto next = real<int (*)(int)>("fsync");
  event(fd);
  if (disk_full(fd)) {
    errno = ENOSPC;
    return -1;
  }
  return next(fd);
}

int fdatasync(int fd) {
  static auto next = real<int (*)(int)>("fdatasync");
  event(fd);
  return next(fd);
}

int rename(const char* from, const char* to) {
  static auto next = real<int (*)(const char*, const char*)>("rename");
  event(-1);
  return next(from, to);
}

// stdio writes reach the kernel through glibc's internal write, which this shim cannot see:
// its entry points are interposed instead (MetricsCsv writes one fwrite + fflush per row).
size_t fwrite(const void* ptr, size_t size, size_t n, FILE* stream) {
  static auto next = real<size_t (*)(const void*, size_t, size_t, FILE*)>("fwrite");
  const int fd = fileno(stream);
  event(fd);
  if (size == 0) return next(ptr, size, n, stream);
  const ssize_t allowed = budget(fd, size * n);
  if (allowed < 0) return 0;
  const size_t whole = static_cast<size_t>(allowed) / size;
  const size_t done = next(ptr, size, whole, stream);
  if (done < n) errno = ENOSPC;
  return done;
}

int fputs(const char* s, FILE* stream) {
  static auto next = real<int (*)(const char*, FILE*)>("fputs");
  const int fd = fileno(stream);
  event(fd);
  if (budget(fd, std::strlen(s)) != static_cast<ssize_t>(std::strlen(s))) {
    errno = ENOSPC;
    return EOF;
  }
  return next(s, stream);
}

int fflush(FILE* stream) {
  static auto next = real<int (*)(FILE*)>("fflush");
  if (stream) event(fileno(stream));
  return next(stream);
}

}  // extern "C"
