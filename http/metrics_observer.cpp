#include "http/metrics_observer.hpp"

#include <string>

namespace parley::http {

namespace {

// Unknown methods would be attacker-chosen label values; fold them into one.
std::string method_label(const std::string& m) {
  for (const char* known : {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
    if (m == known)
      return m;
  return m.empty() ? "none" : "other";
}

} // namespace

void metrics_observer::on_complete(const request& req, int status,
                                   std::chrono::nanoseconds latency) {
  auto method = method_label(req.method);
  auto route = req.route.empty() ? std::string("unmatched") : req.route;
  reg_.get_counter("parley_http_requests_total", "HTTP requests answered, by route and status",
                   {{"method", method}, {"route", route}, {"status", std::to_string(status)}})
      .inc();
  reg_.get_histogram("parley_http_request_duration_seconds",
                     "Time from a fully read request to its written response",
                     {{"method", method}, {"route", route}})
      .observe(std::chrono::duration<double>(latency).count());
}

} // namespace parley::http
