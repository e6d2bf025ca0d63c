#include "bench/common/load.hpp"

#include <memory>
#include <stdexcept>
#include <utility> // before Asio: g++ 12 + C++20 (see PLATFORM.md)

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace parley::bench {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using clk = std::chrono::steady_clock;

struct driver;

/// One keep-alive connection carrying one request at a time.
struct connection : std::enable_shared_from_this<connection> {
  connection(driver& d, asio::io_context& io)
      : d(d)
      , sock(io)
      , timer(io) {}

  void begin();
  void next();
  void send();
  void fail();
  void reconnect();
  void finish();

  driver& d;
  tcp::socket sock;
  asio::steady_timer timer;
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  std::string req;
  uint64_t seq = 0;   ///< of the request in flight
  clk::time_point t0; ///< when the request was due (open loop) or written (closed loop)
  bool busy = false;  ///< a request is written and not yet answered
  bool done = false;
};

struct driver {
  explicit driver(const load_options& o)
      : o(o) {}

  const load_options& o;
  asio::io_context io;
  tcp::endpoint ep;
  load_result res;
  clk::time_point start, end, deadline, last_send, last_answer;
  uint64_t next_seq = 0;
  uint64_t limit = 0;
  bool stopping = false;
  int live = 0; ///< connections not finished
  asio::steady_timer* watchdog = nullptr;
  std::vector<std::shared_ptr<connection>> conns;

  bool open_loop() const { return o.rate > 0; }
  clk::time_point due(uint64_t seq) const {
    auto k = static_cast<double>(seq - o.first_seq);
    return start +
           std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(k / o.rate));
  }
};

void connection::begin() {
  beast::error_code ec;
  sock.set_option(tcp::no_delay(true), ec);
  next();
}

void connection::next() {
  if (done)
    return;
  // Open loop too: a request due before the end but not started by then is dropped, not sent
  // late (as wrk2 does); `planned` minus `sent` shows how far behind the generator fell.
  if (d.stopping || d.next_seq >= d.limit || clk::now() >= d.end)
    return finish();
  auto seq = d.next_seq++;
  if (!d.open_loop()) {
    this->seq = seq;
    req = d.o.make_request(seq);
    t0 = clk::now();
    return send();
  }
  auto due = d.due(seq);
  auto go = [self = shared_from_this(), seq, due] {
    self->seq = seq;
    self->req = self->d.o.make_request(seq);
    self->t0 = due;
    self->send();
  };
  if (due <= clk::now())
    return go();
  timer.expires_at(due);
  timer.async_wait([self = shared_from_this(), go](beast::error_code ec) {
    if (ec || self->d.stopping)
      return self->finish();
    go();
  });
}

void connection::send() {
  busy = true;
  ++d.res.sent;
  d.last_send = clk::now();
  asio::async_write(
      sock, asio::buffer(req), [self = shared_from_this()](beast::error_code ec, size_t) {
        if (ec)
          return self->fail();
        self->res = {};
        bhttp::async_read(self->sock, self->buf, self->res, [self](beast::error_code ec, size_t) {
          if (ec)
            return self->fail();
          auto now = clk::now();
          self->busy = false;
          self->d.last_answer = now;
          auto status = self->res.result_int();
          if (self->d.o.on_answer)
            self->d.o.on_answer(self->seq, status);
          if (status == self->d.o.success_status) {
            ++self->d.res.ok;
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(now - self->t0).count();
            self->d.res.latency_us.push_back(
                static_cast<uint32_t>(std::min<int64_t>(us, UINT32_MAX)));
          } else {
            ++self->d.res.other_status[status];
          }
          if (self->res.need_eof())
            return self->reconnect();
          self->next();
        });
      });
}

void connection::fail() {
  if (busy) {
    ++d.res.transport_errors;
    busy = false;
  }
  if (d.stopping || clk::now() >= d.deadline)
    return finish();
  reconnect();
}

void connection::reconnect() {
  if (done)
    return;
  beast::error_code ec;
  sock.close(ec);
  buf.clear();
  sock.async_connect(d.ep, [self = shared_from_this()](beast::error_code ec) {
    if (!ec)
      return self->begin();
    ++self->d.res.transport_errors;
    if (self->d.stopping || clk::now() >= self->d.deadline)
      return self->finish();
    self->timer.expires_after(std::chrono::milliseconds(10));
    self->timer.async_wait([self](beast::error_code) { self->reconnect(); });
  });
}

void connection::finish() {
  if (done)
    return;
  done = true;
  beast::error_code ec;
  sock.close(ec);
  timer.cancel();
  if (--d.live == 0)
    d.watchdog->cancel(); // the last pending operation: io.run() returns
}

double epoch_seconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

} // namespace

load_result run_load(const load_options& o) {
  driver d{o};
  d.ep = tcp::endpoint{asio::ip::make_address(o.host), o.port};
  d.next_seq = o.first_seq;
  d.limit = o.max_requests == UINT64_MAX ? UINT64_MAX : o.first_seq + o.max_requests;
  double seconds = std::chrono::duration<double>(o.duration).count();
  if (o.rate > 0) {
    d.limit = std::min(d.limit, o.first_seq + static_cast<uint64_t>(o.rate * seconds));
    d.res.planned = d.limit - o.first_seq;
  }
  d.res.latency_us.reserve(o.rate > 0 ? static_cast<size_t>(o.rate * seconds) + 1 : 1u << 19);

  // Connections are opened before the clock starts: the figures are about requests, not handshakes.
  for (int i = 0; i < o.connections; ++i) {
    auto c = std::make_shared<connection>(d, d.io);
    c->sock.connect(d.ep);
    d.conns.push_back(std::move(c));
  }
  d.start = clk::now();
  d.end = d.start + o.duration;
  d.deadline = d.end + o.drain_timeout;
  d.last_send = d.last_answer = d.start;
  d.res.wall_start = epoch_seconds();

  asio::steady_timer watchdog{d.io};
  watchdog.expires_at(d.deadline);
  watchdog.async_wait([&d](beast::error_code ec) {
    if (ec)
      return;
    d.stopping = true;
    for (auto& c : d.conns) {
      if (c->busy) {
        ++d.res.transport_errors; // sent, never answered
        c->busy = false;
      }
      c->finish();
    }
  });
  d.watchdog = &watchdog;
  d.live = static_cast<int>(d.conns.size());
  for (auto& c : d.conns)
    asio::post(d.io, [c] { c->begin(); });
  d.io.run();

  d.res.next_seq = d.next_seq;
  d.res.elapsed_s = std::chrono::duration<double>(d.last_answer - d.start).count();
  d.res.send_window_s = std::chrono::duration<double>(d.last_send - d.start).count();
  d.conns.clear();
  return std::move(d.res);
}

http_reply http_call(const std::string& host, uint16_t port, const std::string& method,
                     const std::string& target, const std::string& body,
                     const std::string& bearer) {
  asio::io_context io;
  tcp::socket sock{io};
  sock.connect(tcp::endpoint{asio::ip::make_address(host), port});
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), target, 11};
  req.set(bhttp::field::host, host);
  if (!bearer.empty())
    req.set(bhttp::field::authorization, "Bearer " + bearer);
  if (!body.empty()) {
    req.set(bhttp::field::content_type, "application/json");
    req.body() = body;
  }
  req.keep_alive(false);
  req.prepare_payload();
  bhttp::write(sock, req);
  beast::flat_buffer buf;
  bhttp::response<bhttp::string_body> res;
  bhttp::read(sock, buf, res);
  beast::error_code ec;
  sock.shutdown(tcp::socket::shutdown_both, ec);
  return {res.result_int(), std::move(res.body())};
}

} // namespace parley::bench
