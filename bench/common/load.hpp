#pragma once
// An HTTP/1.1 load generator on one Asio thread (the only Beast translation unit of the benches),
// and a tiny blocking client for set-up calls.
//
// Two modes, like wrk and wrk2:
//  - closed loop (rate == 0): every connection sends its next request as soon as the previous
//    answer arrives; measures the maximum rate the server sustains;
//  - open loop (rate > 0): request k is due at start + k / rate whatever happened before, and its
//    latency is counted from that due time, so a stalled server cannot hide its queueing delay
//    (no coordinated omission).
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace parley::bench {

struct load_options {
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  int connections = 64;
  double rate = 0;                                ///< requests/s; 0 = as fast as answered
  std::chrono::milliseconds duration{20000};      ///< no request is started after this
  std::chrono::milliseconds drain_timeout{15000}; ///< then answers in flight get this long (the
                                                  ///< server's own request timeout is 10 s)
  uint64_t first_seq = 0;                         ///< make_request(first_seq), (first_seq + 1), ...
  uint64_t max_requests = UINT64_MAX;
  std::function<std::string(uint64_t seq)> make_request;
  unsigned success_status = 200; ///< the answer counted in `ok` (202 for accepted sends)
  /// Called on the load thread for every answer (any status), e.g. to remember which sequence
  /// numbers succeeded. Optional.
  std::function<void(uint64_t seq, unsigned status)> on_answer;
};

struct load_result {
  uint64_t planned = 0; ///< open loop: rate x duration
  uint64_t sent = 0;
  uint64_t ok = 0;                           ///< answered success_status
  std::map<unsigned, uint64_t> other_status; ///< status -> count (not success_status)
  uint64_t transport_errors = 0;             ///< connect/read/write failures, unanswered at the end
  uint64_t next_seq = 0;                     ///< first sequence number not used
  std::vector<uint32_t> latency_us;          ///< per success_status answer
  double wall_start = 0;                     ///< system clock (epoch seconds) of the first send
  double elapsed_s = 0;                      ///< first send to last answer
  double send_window_s = 0;                  ///< first send to last send
};

/// Runs one load phase to completion (blocking).
load_result run_load(const load_options& opts);

struct http_reply {
  unsigned status = 0;
  std::string body;
};

/// One request on a fresh connection (set-up and scraping, not load). Throws on transport errors.
http_reply http_call(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& target, const std::string& body,
                     const std::string& bearer = {});

} // namespace parley::bench
