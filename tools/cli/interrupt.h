#pragma once
// Ctrl-C during training: the first SIGINT or SIGTERM only raises a flag that the training
// loop polls between steps (so it can finish the step, write a checkpoint and exit
// cleanly); a second one gets the default action and ends the process at once.
namespace onnxtrain::cli {

class InterruptGuard {
 public:
  // Installs the handlers for SIGINT and SIGTERM until destruction. `message` (static
  // storage, may be null) is written to stderr when the first signal arrives, and
  // `on_interrupt(context)` is called (when set) from the handler: it must be
  // async-signal-safe, e.g. Trainer::request_stop. Only one guard may be alive at a time
  // (std::logic_error otherwise).
  using Hook = void (*)(void* context);
  explicit InterruptGuard(const char* message = kDefaultMessage, Hook on_interrupt = nullptr, void* context = nullptr);
  // Restores the handlers that were installed before.
  ~InterruptGuard();
  InterruptGuard(const InterruptGuard&) = delete;
  InterruptGuard& operator=(const InterruptGuard&) = delete;

  // Whether SIGINT or SIGTERM arrived since construction; cheap enough to poll every step.
  bool requested() const;
  // The signal that arrived first (SIGINT, SIGTERM), 0 if none.
  int signal_number() const;
  // The shell's convention for a process ended by that signal: 128 + signal (130 for
  // Ctrl-C); 0 if none arrived.
  int exit_code() const;

  static constexpr const char* kDefaultMessage =
      "\ninterrupted: stopping after the current step (interrupt again to stop at once)\n";
};

}  // namespace onnxtrain::cli
