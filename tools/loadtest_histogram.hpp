/// The latency histogram of `heaven loadtest`: log-linear buckets in the
/// manner of HdrHistogram, small and of our own. Values are microseconds;
/// every value below 128 has a bucket of its own, above that each power of
/// two is cut into 64 buckets, so a value is known to within 1/64 (1.6 %)
/// up to 2^40 µs (12 days). Recording is a few instructions, no allocation
/// after the first.
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <vector>

namespace heaven::loadtest {

class histogram {
public:
  static constexpr int linear = 128;
  static constexpr int per_octave = 64;
  static constexpr int max_bit = 40;
  static constexpr std::size_t buckets = linear
                                         + (max_bit - 7 + 1) * per_octave;

  /// The bucket of value `v`.
  static std::size_t index_of(uint64_t v) {
    if (v < linear)
      return static_cast<std::size_t>(v);
    int msb = std::min(63 - std::countl_zero(v), max_bit);
    v = std::min(v, (uint64_t{1} << (max_bit + 1)) - 1);
    int shift = msb - 6;
    auto top = static_cast<std::size_t>(v >> shift); // 64..127
    return linear + static_cast<std::size_t>(msb - 7) * per_octave
           + (top - per_octave);
  }

  /// The highest value bucket `i` holds.
  static uint64_t highest_in(std::size_t i) {
    if (i < linear)
      return i;
    auto octave = (i - linear) / per_octave;
    auto top = (i - linear) % per_octave + per_octave;
    int shift = static_cast<int>(octave) + 1;
    return ((uint64_t{top} + 1) << shift) - 1;
  }

  void record(uint64_t v) {
    if (counts_.empty())
      counts_.assign(buckets, 0);
    ++counts_[index_of(v)];
    ++count_;
    max_ = std::max(max_, v);
    min_ = count_ == 1 ? v : std::min(min_, v);
    sum_ += v;
  }

  void add(const histogram& other) {
    if (other.count_ == 0)
      return;
    if (counts_.empty())
      counts_.assign(buckets, 0);
    for (std::size_t i = 0; i < buckets; ++i)
      counts_[i] += other.counts_[i];
    min_ = count_ == 0 ? other.min_ : std::min(min_, other.min_);
    count_ += other.count_;
    max_ = std::max(max_, other.max_);
    sum_ += other.sum_;
  }

  uint64_t count() const {
    return count_;
  }
  uint64_t max() const {
    return max_;
  }
  uint64_t min() const {
    return min_;
  }
  double mean() const {
    return count_ == 0 ? 0 : static_cast<double>(sum_) / count_;
  }

  /// The value at percentile `p` (0..100): the highest value of the bucket
  /// holding the value of rank ceil(p% of count), never above the maximum;
  /// 0 when nothing was recorded. A bound from above, as HdrHistogram's.
  uint64_t percentile(double p) const {
    if (count_ == 0)
      return 0;
    auto rank = static_cast<uint64_t>(p / 100.0 * count_ + 0.999999);
    rank = std::clamp<uint64_t>(rank, 1, count_);
    uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets; ++i) {
      seen += counts_[i];
      if (seen >= rank)
        return std::min(highest_in(i), max_);
    }
    return max_;
  }

private:
  std::vector<uint64_t> counts_;
  uint64_t count_ = 0, max_ = 0, min_ = 0, sum_ = 0;
};

} // namespace heaven::loadtest
