// DataLoader shards (data-parallel training): each rank's slices of the same global
// batches partition them, in order, with sizes that differ by at most one.
#include "tests/support/data_fixture.h"

namespace onnxtrain::test::data {
namespace {

std::vector<int64_t> joined_slices(const DatasetPtr& data, LoaderOptions options, int shards, int64_t epoch,
                                   int64_t index, std::vector<size_t>* sizes = nullptr) {
  std::vector<int64_t> all;
  for (int r = 0; r < shards; ++r) {
    options.shard = r;
    options.shards = shards;
    DataLoader loader(data, options);
    loader.seek(epoch, index);
    Batch b = loader.next();
    all.insert(all.end(), b.samples.begin(), b.samples.end());
    if (sizes) sizes->push_back(b.samples.size());
  }
  return all;
}

TEST(LoaderShards, RanksSliceTheSameGlobalBatchesInOrder) {
  auto data = make_array_dataset(numbered(23), "mem");
  const LoaderOptions options{.batch_size = 8, .shuffle = true, .seed = 5, .prefetch = false};
  DataLoader whole(data, options);
  EXPECT_EQ(whole.batches_per_epoch(), 3);  // 8, 8, 7
  for (int64_t epoch = 0; epoch < 2; ++epoch)
    for (int64_t index = 0; index < 3; ++index) {
      std::vector<size_t> sizes;
      EXPECT_EQ(joined_slices(data, options, 3, epoch, index, &sizes), whole.samples(epoch, index));
      for (size_t s : sizes) EXPECT_GE(s, 2u);
      EXPECT_LE(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()), 1u);
    }
}

TEST(LoaderShards, ALastBatchSmallerThanTheRanksIsDropped) {
  auto data = make_array_dataset(numbered(17), "mem");  // 8 + 8 + 1
  LoaderOptions options{.batch_size = 8, .shuffle = true, .prefetch = false};
  EXPECT_EQ(DataLoader(data, options).batches_per_epoch(), 3);
  options.shards = 2;
  EXPECT_EQ(DataLoader(data, options).batches_per_epoch(), 2);
}

TEST(LoaderShards, RefusesImpossibleShards) {
  auto data = make_array_dataset(numbered(17), "mem");
  EXPECT_ERROR(DataLoader(data, {.batch_size = 2, .shard = 0, .shards = 3}), "cannot give each of 3 ranks");
  EXPECT_ERROR(DataLoader(data, {.batch_size = 8, .shard = 2, .shards = 2}), "shard 2 of 2 does not exist");
}

}  // namespace
}  // namespace onnxtrain::test::data
