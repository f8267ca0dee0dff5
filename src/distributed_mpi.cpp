// Distributed on MPI: MPI_COMM_WORLD, initialised on first use and finalised once, at exit.
// The C API only: the deprecated C++ bindings need a library we do not link.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <climits>
#include <cstdio>
#include <vector>

#include "onnxtrain/distributed.h"

namespace onnxtrain {

namespace {

MPI_Datatype mpi_type(DType dtype, const char* what) {
  if (dtype == DType::Float) return MPI_FLOAT;
  if (dtype == DType::Double) return MPI_DOUBLE;
  throw DataError(std::string(what) + ": distributed training handles float and double tensors, not " +
                  dtype_name(dtype));
}

void check(int code, const char* call) {
  if (code == MPI_SUCCESS) return;
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  throw BackendError(std::string(call) + " failed: " + std::string(text, static_cast<size_t>(length)));
}

// MPI counts are int: larger buffers go in pieces.
constexpr int64_t kMaxCount = INT_MAX / 2;

}  // namespace

struct Distributed::Impl {
  bool initialized_here = false;
  std::vector<MPI_Request> pending;
};

Distributed::Distributed() {
  if (!launched_by_mpi()) return;  // a single process never pays for MPI_Init
  impl_ = new Impl;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    impl_->initialized_here = true;
    if (provided < MPI_THREAD_FUNNELED)
      throw BackendError("the MPI library offers no MPI_THREAD_FUNNELED support, which onnxtrain needs");
  }
  // Errors come back as codes and become exceptions instead of aborting silently.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &size_);
}

Distributed::~Distributed() {
  if (!impl_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (impl_->initialized_here && !finalized) MPI_Finalize();
  delete impl_;
}

bool Distributed::built_with_mpi() { return true; }

void Distributed::broadcast(Tensor& tensor, int root) {
  if (size_ == 1) return;
  // Bytes: any dtype goes as it is stored.
  auto* p = static_cast<char*>(tensor.raw());
  for (int64_t done = 0, n = static_cast<int64_t>(tensor.nbytes()); done < n; done += kMaxCount) {
    const int count = static_cast<int>(std::min(kMaxCount, n - done));
    check(MPI_Bcast(p + done, count, MPI_BYTE, root, MPI_COMM_WORLD), "MPI_Bcast");
  }
}

void Distributed::allreduce_sum(Tensor& tensor) {
  if (size_ == 1) return;
  mpi_type(tensor.dtype(), "allreduce");
  start_allreduce_sum(tensor.raw(), tensor.numel(), tensor.dtype());
  wait_all();
}

void Distributed::allreduce_sum(double* values, int64_t count) {
  if (size_ == 1) return;
  start_allreduce_sum(values, count, DType::Double);
  wait_all();
}

void Distributed::barrier() {
  if (size_ > 1) check(MPI_Barrier(MPI_COMM_WORLD), "MPI_Barrier");
}

void Distributed::start_allreduce_sum(void* data, int64_t count, DType dtype) {
  if (size_ == 1) return;
  const MPI_Datatype type = mpi_type(dtype, "allreduce");
  auto* p = static_cast<char*>(data);
  for (int64_t done = 0; done < count; done += kMaxCount) {
    const int n = static_cast<int>(std::min(kMaxCount, count - done));
    MPI_Request request;
    check(MPI_Iallreduce(MPI_IN_PLACE, p + done * dtype_size(dtype), n, type, MPI_SUM, MPI_COMM_WORLD, &request),
          "MPI_Iallreduce");
    impl_->pending.push_back(request);
  }
}

void Distributed::wait_all() {
  if (!impl_ || impl_->pending.empty()) return;
  std::vector<MPI_Request> requests;
  requests.swap(impl_->pending);
  check(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE), "MPI_Waitall");
}

void Distributed::abort(const std::string& message, int code) {
  std::fprintf(stderr, "onnxtrain (rank %d of %d): %s\n", rank_, size_, message.c_str());
  std::fflush(stderr);
  if (impl_) MPI_Abort(MPI_COMM_WORLD, code);
  std::exit(code);
}

}  // namespace onnxtrain
