#include "tools/cli/interrupt.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace onnxtrain::cli {

namespace {

// Only lock-free atomics may be touched from a signal handler.
static_assert(std::atomic<int>::is_always_lock_free);
static_assert(std::atomic<const char*>::is_always_lock_free);
static_assert(std::atomic<InterruptGuard::Hook>::is_always_lock_free);
static_assert(std::atomic<void*>::is_always_lock_free);

std::atomic<int> g_signal{0};
std::atomic<const char*> g_message{nullptr};
std::atomic<InterruptGuard::Hook> g_hook{nullptr};
std::atomic<void*> g_context{nullptr};
std::atomic<bool> g_active{false};
struct sigaction g_previous[2];
constexpr int kSignals[2] = {SIGINT, SIGTERM};

extern "C" void on_signal(int sig) {
  const int saved_errno = errno;
  int none = 0;
  if (g_signal.compare_exchange_strong(none, sig)) {
    if (const char* msg = g_message.load()) {
      ssize_t ignored = ::write(STDERR_FILENO, msg, std::strlen(msg));
      (void)ignored;
    }
    if (InterruptGuard::Hook hook = g_hook.load()) hook(g_context.load());
  } else {
    // The user insists: the default action, delivered as soon as this handler returns
    // (the signal is blocked while its handler runs).
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    ::sigaction(sig, &dfl, nullptr);
    ::raise(sig);
  }
  errno = saved_errno;
}

}  // namespace

InterruptGuard::InterruptGuard(const char* message, Hook on_interrupt, void* context) {
  if (g_active.exchange(true)) throw std::logic_error("InterruptGuard: another guard is already installed");
  g_signal = 0;
  g_message = message;
  g_context = context;
  g_hook = on_interrupt;
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  // System calls interrupted by the first signal resume: the step in flight completes.
  sa.sa_flags = SA_RESTART;
  for (int i = 0; i < 2; ++i)
    if (::sigaction(kSignals[i], &sa, &g_previous[i]) != 0) {
      const int err = errno;
      for (int j = 0; j < i; ++j) ::sigaction(kSignals[j], &g_previous[j], nullptr);
      g_active = false;
      throw std::runtime_error(std::string("cannot install a signal handler: ") + std::strerror(err));
    }
}

InterruptGuard::~InterruptGuard() {
  for (int i = 0; i < 2; ++i) ::sigaction(kSignals[i], &g_previous[i], nullptr);
  g_message = nullptr;
  g_hook = nullptr;
  g_context = nullptr;
  g_active = false;
}

bool InterruptGuard::requested() const { return g_signal.load(std::memory_order_relaxed) != 0; }

int InterruptGuard::signal_number() const { return g_signal.load(); }

int InterruptGuard::exit_code() const {
  const int sig = g_signal.load();
  return sig ? 128 + sig : 0;
}

}  // namespace onnxtrain::cli
