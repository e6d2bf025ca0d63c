#pragma once
// A small Prometheus metrics registry. Series are created once (under a mutex) and then updated
// lock-free through stable references, so hot paths cache the reference they get back.
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace parley::metrics {

using labels = std::vector<std::pair<std::string, std::string>>;

class counter {
public:
  void inc(double v = 1.0);
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

class gauge {
public:
  void set(double v) { value_.store(v, std::memory_order_relaxed); }
  void inc(double v = 1.0);
  void dec(double v = 1.0) { inc(-v); }
  double value() const { return value_.load(std::memory_order_relaxed); }

private:
  std::atomic<double> value_{0.0};
};

class histogram {
public:
  explicit histogram(std::vector<double> upper_bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  /// Cumulative counts per bound (Prometheus "le" semantics), then +Inf, sum and count.
  struct snapshot {
    std::vector<uint64_t> cumulative;
    uint64_t count = 0;
    double sum = 0;
  };
  snapshot read() const;

private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0.0};
};

/// Latency buckets in seconds, from 100 us to 10 s.
std::vector<double> latency_buckets();
/// Size buckets (batch sizes, rows): 1 .. 10,000.
std::vector<double> size_buckets();

class registry {
public:
  counter& get_counter(std::string_view name, std::string_view help, const labels& l = {});
  gauge& get_gauge(std::string_view name, std::string_view help, const labels& l = {});
  histogram& get_histogram(std::string_view name, std::string_view help, const labels& l = {},
                           std::vector<double> bounds = latency_buckets());

  /// Prometheus text exposition format 0.0.4 (checked with `promtool check metrics` in tests).
  std::string render() const;

private:
  enum class kind { counter, gauge, histogram };
  struct series {
    labels label_set;
    std::unique_ptr<counter> c;
    std::unique_ptr<gauge> g;
    std::unique_ptr<histogram> h;
  };
  struct family {
    kind type;
    std::string help;
    std::vector<std::unique_ptr<series>> members;
  };
  series& find_or_add(std::string_view name, std::string_view help, kind type, const labels& l);

  mutable std::mutex mtx_;
  std::map<std::string, family, std::less<>> families_;
};

} // namespace parley::metrics
