// Distributed: what both builds share (with MPI: distributed_mpi.cpp, without:
// distributed_none.cpp).
#include <cstdlib>

#include "onnxtrain/distributed.h"

namespace onnxtrain {

bool Distributed::launched_by_mpi() {
  // Open MPI's mpirun, PMIx launchers (srun, prterun) and MPICH's hydra set these.
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_SIZE"}) {
    const char* value = std::getenv(name);
    if (value && *value) return true;
  }
  return false;
}

Distributed& Distributed::world() {
  static Distributed instance;
  return instance;
}

bool Distributed::any(bool flag) {
  if (size_ == 1) return flag;
  double v = flag ? 1 : 0;
  allreduce_sum(&v, 1);
  return v > 0;
}

}  // namespace onnxtrain
