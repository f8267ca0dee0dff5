// DataLoader: batch order as a pure function of (options, epoch, batch index), read on an
// optional background thread one batch ahead of the consumer.
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>

#include "onnxtrain/data.h"
#include "src/data_internal.h"

namespace onnxtrain {

struct DataLoader::Impl {
  using Position = std::pair<int64_t, int64_t>;  // (epoch, batch index)

  DatasetPtr data;
  LoaderOptions options;
  int64_t size = 0, batches = 0;
  Position position{0, 0};  // of the batch next() returns; consumer-side state

  // The permutation of the last shuffled epoch asked for (both threads ask).
  std::mutex permutation_mutex;
  int64_t permutation_epoch = -1;
  std::vector<int64_t> permutation;

  // The background reader. It works on `request` and leaves the result in `ready`;
  // `requested` is the position the consumer asked for last (to ask only once).
  struct Ready {
    Position position;
    Batch batch;
    std::exception_ptr error;
  };
  std::mutex mutex;
  std::condition_variable changed;
  bool stop = false;
  std::optional<Position> request, requested;
  std::optional<Ready> ready;
  std::thread worker;

  std::vector<int64_t> samples(int64_t epoch, int64_t index) {
    if (epoch < 0 || index < 0 || index >= batches)
      throw DataError(data->source() + ": no batch " + std::to_string(index) + " of epoch " + std::to_string(epoch) +
                      " (" + std::to_string(batches) + " batches per epoch)");
    const int64_t b = options.batch_size;
    std::vector<int64_t> out;
    if (options.shuffle) {
      std::lock_guard lock(permutation_mutex);
      if (permutation_epoch != epoch) {
        constexpr uint64_t kDomain = 0x73687566666c65ull;  // "shuffle"
        permutation = data::permutation(size, data::combine(data::combine(options.seed, kDomain), epoch));
        permutation_epoch = epoch;
      }
      const int64_t begin = index * b, end = std::min(size, begin + b);
      out.assign(permutation.begin() + begin, permutation.begin() + end);
    } else {
      // Batch k of the stream starts at sample kB mod N; 128 bits keep kB exact at any epoch.
      const auto k = static_cast<unsigned __int128>(epoch) * static_cast<uint64_t>(batches) + static_cast<uint64_t>(index);
      const auto start = static_cast<int64_t>(k * static_cast<uint64_t>(b) % static_cast<uint64_t>(size));
      out.resize(static_cast<size_t>(b));
      for (int64_t j = 0; j < b; ++j) out[j] = (start + j) % size;
    }
    return out;
  }

  Batch read(Position p) {
    Batch batch;
    batch.epoch = p.first;
    batch.index = p.second;
    batch.samples = samples(p.first, p.second);
    if (options.shards > 1) {
      const int64_t m = static_cast<int64_t>(batch.samples.size()), r = options.shard, n = options.shards;
      batch.samples = std::vector<int64_t>(batch.samples.begin() + m * r / n, batch.samples.begin() + m * (r + 1) / n);
    }
    BatchOptions o;
    o.seed = options.seed;
    o.epoch = p.first;
    o.augment = options.augment;
    o.arrays = options.arrays;
    batch.arrays = data->batch(batch.samples, o);
    return batch;
  }

  void work() {
    while (true) {
      Position p;
      {
        std::unique_lock lock(mutex);
        changed.wait(lock, [&] { return stop || request; });
        if (stop) return;
        p = *request;
        request.reset();
      }
      Ready r{p, {}, nullptr};
      try {
        r.batch = read(p);
      } catch (...) {
        r.error = std::current_exception();
      }
      {
        std::lock_guard lock(mutex);
        ready = std::move(r);
      }
      changed.notify_all();
    }
  }

  // Asks the worker for `p` unless it was the last thing asked. Called with `mutex` held.
  void ask(Position p) {
    if (requested == p) return;
    request = requested = p;
    changed.notify_all();
  }

  Position after(Position p) const { return p.second + 1 < batches ? Position{p.first, p.second + 1} : Position{p.first + 1, 0}; }
};

DataLoader::DataLoader(DatasetPtr data, LoaderOptions options) : impl_(std::make_unique<Impl>()) {
  if (!data) throw DataError("DataLoader: no dataset");
  Impl& s = *impl_;
  s.data = std::move(data);
  s.options = std::move(options);
  s.size = s.data->size();
  const int64_t b = s.options.batch_size;
  if (b <= 0) throw DataError(s.data->source() + ": the batch size must be positive, got " + std::to_string(b));
  if (s.size <= 0) throw DataError(s.data->source() + " holds no samples");
  for (const auto& name : s.options.arrays)
    if (!s.data->find(name)) data::throw_no_array(*s.data, name);
  if (s.options.shards < 1 || s.options.shard < 0 || s.options.shard >= s.options.shards)
    throw DataError(s.data->source() + ": shard " + std::to_string(s.options.shard) + " of " +
                    std::to_string(s.options.shards) + " does not exist");
  if (b < s.options.shards)
    throw DataError(s.data->source() + ": a batch of " + std::to_string(b) + " cannot give each of " +
                    std::to_string(s.options.shards) + " ranks a sample");
  s.batches = s.options.drop_last ? s.size / b : (s.size + b - 1) / b;
  // Every rank needs a sample of the last (shuffled, smaller) batch, or it is dropped.
  if (s.options.shuffle && !s.options.drop_last && s.size % b != 0 && s.size % b < s.options.shards) --s.batches;
  if (s.batches == 0)
    throw DataError(s.data->source() + ": the batch size " + std::to_string(b) + " exceeds its " +
                    std::to_string(s.size) + " samples, and drop_last leaves no batch");
  if (s.options.prefetch) s.worker = std::thread([&s] { s.work(); });
}

DataLoader::~DataLoader() {
  if (impl_->worker.joinable()) {
    {
      std::lock_guard lock(impl_->mutex);
      impl_->stop = true;
    }
    impl_->changed.notify_all();
    impl_->worker.join();
  }
}

int64_t DataLoader::batches_per_epoch() const { return impl_->batches; }

std::vector<int64_t> DataLoader::samples(int64_t epoch, int64_t index) const { return impl_->samples(epoch, index); }

Batch DataLoader::next() {
  Impl& s = *impl_;
  const Impl::Position p = s.position;
  if (!s.options.prefetch) {
    Batch batch = s.read(p);
    s.position = s.after(p);
    return batch;
  }
  std::unique_lock lock(s.mutex);
  s.ask(p);
  s.changed.wait(lock, [&] { return s.ready && s.ready->position == p; });
  Impl::Ready r = std::move(*s.ready);
  s.ready.reset();
  s.requested.reset();
  if (r.error) std::rethrow_exception(r.error);  // the position stays: the next call retries
  s.position = s.after(p);
  s.ask(s.position);
  return std::move(r.batch);
}

void DataLoader::seek(int64_t epoch, int64_t index) {
  if (epoch < 0 || index < 0 || index >= impl_->batches)
    throw DataError(impl_->data->source() + ": cannot seek to batch " + std::to_string(index) + " of epoch " +
                    std::to_string(epoch) + " (" + std::to_string(impl_->batches) + " batches per epoch)");
  impl_->position = {epoch, index};
}

int64_t DataLoader::epoch() const { return impl_->position.first; }
int64_t DataLoader::index() const { return impl_->position.second; }
const Dataset& DataLoader::dataset() const { return *impl_->data; }

}  // namespace onnxtrain
