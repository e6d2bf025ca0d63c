#pragma once
// A fast fake of Meta's Graph API for the outbound benchmark, in-process on our own http::server
// (so the bench adds no Beast translation unit): `POST /{version}/{pnid}/messages` answers Meta's
// success body with a fresh wamid, `GET /{version}/{pnid}` (the health check) answers 200. It
// records when each phone_number_id received each message and how often each recipient was seen.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "http/server.hpp"

namespace parley::bench {

class fake_graph {
public:
  using clock = std::chrono::steady_clock;

  /// Listens on 127.0.0.1, a free port. Every answer is delayed by `latency` (0: answered at
  /// once) without blocking the I/O thread.
  explicit fake_graph(std::chrono::milliseconds latency);
  ~fake_graph();
  fake_graph(const fake_graph&) = delete;
  fake_graph& operator=(const fake_graph&) = delete;

  /// "http://127.0.0.1:<port>": a channel's graph_base_url.
  std::string base_url() const;

  /// Message sends received so far (duplicates included).
  uint64_t received() const;
  /// Health checks received so far.
  uint64_t health_checks() const;
  /// When the last message send arrived (epoch of the steady clock if none did).
  clock::time_point last_arrival() const;
  /// Arrival times of the sends to one phone_number_id, in arrival order.
  std::vector<clock::time_point> arrivals_of(const std::string& phone_number_id) const;
  /// Sends (all phone_number_ids) that arrived in [from, to).
  uint64_t arrivals_between(clock::time_point from, clock::time_point to) const;
  /// How often each recipient (`to`) was received.
  std::unordered_map<std::string, uint32_t> recipients() const;

private:
  void on_message(const std::string& phone_number_id, const std::string& body,
                  http::responder respond);
  void answer(http::responder respond, http::response r);

  struct delayer;
  std::chrono::milliseconds latency_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::vector<clock::time_point>> arrivals_;
  std::unordered_map<std::string, uint32_t> recipients_;
  uint64_t received_ = 0;
  clock::time_point last_{};
  std::atomic<uint64_t> health_checks_{0};
  std::atomic<uint64_t> next_wamid_{0};
  std::unique_ptr<delayer> delayer_;
  std::unique_ptr<http::server> server_;
};

} // namespace parley::bench
