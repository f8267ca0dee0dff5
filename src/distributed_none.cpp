// Distributed in a build without MPI: a world of one process, whose collectives are
// no-ops; refuses to pretend when a launcher started several copies.
#include <cstdio>
#include <cstdlib>

#include "onnxtrain/distributed.h"

namespace onnxtrain {

struct Distributed::Impl {};

Distributed::Distributed() {
  if (launched_by_mpi())
    throw BackendError(
        "onnxtrain was built without MPI, so it cannot train across the processes mpirun started "
        "(rebuild with libopenmpi-dev installed and -DONNXTRAIN_MPI=ON, see docs/distributed.md)");
}
Distributed::~Distributed() = default;

bool Distributed::built_with_mpi() { return false; }

void Distributed::broadcast(Tensor&, int) {}
void Distributed::allreduce_sum(Tensor&) {}
void Distributed::allreduce_sum(double*, int64_t) {}
void Distributed::barrier() {}
void Distributed::start_allreduce_sum(void*, int64_t, DType) {}
void Distributed::wait_all() {}

void Distributed::abort(const std::string& message, int code) {
  std::fprintf(stderr, "onnxtrain: %s\n", message.c_str());
  std::exit(code);
}

}  // namespace onnxtrain
