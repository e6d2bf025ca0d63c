#pragma once
// Request metrics for /metrics, as a request_observer the server calls after each response.
#include <chrono>

#include "http/server.hpp"
#include "runtime/metrics.hpp"

namespace parley::http {

/// Records `parley_http_requests_total{method,route,status}` and
/// `parley_http_request_duration_seconds{method,route}`. Requests that matched no route are
/// labelled route="unmatched", so scanners cannot blow up the number of series.
class metrics_observer : public request_observer {
public:
  /// `reg` must outlive this observer.
  explicit metrics_observer(metrics::registry& reg)
      : reg_(reg) {}

  void on_complete(const request& req, int status, std::chrono::nanoseconds latency) override;

private:
  metrics::registry& reg_;
};

} // namespace parley::http
