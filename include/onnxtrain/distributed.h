#pragma once
// Data-parallel training across processes. onnxtrain uses MPI (Open MPI) as its transport
// when it was built with it (CMake option ONNXTRAIN_MPI); this header does not expose MPI,
// so applications compile the same either way. Without MPI the world is one process.
//
//   Distributed& world = Distributed::world();   // under `mpirun -np N`: N processes
//   session.set_distributed(world);              // gradients averaged across them
#include <cstdint>
#include <string>

#include "onnxtrain/tensor.h"

namespace onnxtrain {

class Distributed {
 public:
  // The processes this one was started with. Under mpirun (detected from the launcher's
  // environment) the first call initialises MPI (MPI_THREAD_FUNNELED: only the calling
  // thread talks to MPI) and it is finalised once at exit; otherwise a world of one
  // process that never touches MPI. Under mpirun in a build without MPI it throws
  // BackendError saying so, rather than running N unrelated copies of one job.
  static Distributed& world();
  // Whether this build can use MPI, and whether a launcher (mpirun, srun) started us.
  static bool built_with_mpi();
  static bool launched_by_mpi();

  int rank() const { return rank_; }
  int size() const { return size_; }
  bool is_main() const { return rank_ == 0; }

  // In place, on every rank (collectives: every rank calls them in the same order, with
  // tensors of one dtype and size). broadcast: any dtype; allreduce_sum: float or double
  // (DataError otherwise).
  void broadcast(Tensor& tensor, int root = 0);
  void allreduce_sum(Tensor& tensor);
  void allreduce_sum(double* values, int64_t count);
  // True on every rank when `flag` is true on any of them.
  bool any(bool flag);
  void barrier();
  // Starts a sum allreduce of `count` values at `data` in place and returns at once; the
  // memory must stay untouched until wait_all() returns. Lets communication overlap work.
  void start_allreduce_sum(void* data, int64_t count, DType dtype);
  void wait_all();
  // Ends every process of the job (MPI_Abort) after writing `message` to stderr: the way
  // out when one rank fails while the others may wait for it in a collective.
  [[noreturn]] void abort(const std::string& message, int code = 1);

  Distributed(const Distributed&) = delete;
  Distributed& operator=(const Distributed&) = delete;
  ~Distributed();

 private:
  Distributed();
  struct Impl;
  Impl* impl_ = nullptr;
  int rank_ = 0, size_ = 1;
};

}  // namespace onnxtrain
