// The only translation unit that includes Beast. Each connection is a `session` whose every step
// runs on its own strand; one deadline timer per session enforces whichever timeout applies to
// the session's current phase.
#include "http/server.hpp"
#include "http/io_loop.hpp"

#include <utility> // before Asio: g++ 12 in C++20 mode needs it (see PLATFORM.md)

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <future>
#include <limits>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <openssl/rand.h>

#include "http/uri.hpp"
#include "runtime/logging.hpp"

namespace parley::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;

server_options make_server_options(const config::http_config& cfg) {
  server_options o;
  o.address = cfg.address;
  o.port = cfg.port;
  o.io_threads = cfg.io_threads;
  o.body_limit = cfg.body_limit;
  o.header_limit = cfg.header_limit;
  o.read_timeout = std::chrono::milliseconds(cfg.read_timeout_ms);
  o.idle_timeout = std::chrono::milliseconds(cfg.idle_timeout_ms);
  o.request_timeout = std::chrono::milliseconds(cfg.request_timeout_ms);
  o.cors = cors_policy::from_list(cfg.cors_allowed_origins);
  return o;
}

namespace {

class session;
class session_stream_writer;

// Everything sessions share with the server. Sessions hold it by shared_ptr because the last of
// them may be destroyed after the server's own members (when the io_context is torn down).
struct shared_state {
  server_options opts;
  std::shared_ptr<const router> routes;
  std::shared_ptr<request_observer> observer;
  parley::log::logger log{"http"};
  std::atomic<bool> draining{false};
  std::atomic<size_t> in_flight{0};
  std::mutex mtx;
  std::condition_variable cv; ///< signalled whenever a session goes away
  std::unordered_map<const session*, std::weak_ptr<session>> sessions; ///< guarded by mtx
};

// Echoed client ids end up in our logs and responses: keep them short and free of control bytes.
bool sane_request_id(std::string_view id) {
  return !id.empty() && id.size() <= 128 &&
         std::all_of(id.begin(), id.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

// Request ids are correlation handles, not secrets, and every request without one of its own
// (all of Meta's webhooks) needs a fresh one: a per-thread generator seeded once from OpenSSL.
// RAND_bytes per request cost a getpid() system call each (OpenSSL's fork check), which on this
// hypervisor is not cheap.
std::string generate_request_id() {
  thread_local uint64_t state = [] {
    uint64_t seed = 0;
    if (RAND_bytes(reinterpret_cast<unsigned char*>(&seed), sizeof seed) != 1)
      seed = (uint64_t{std::random_device{}()} << 32) ^ std::random_device{}();
    return seed;
  }();
  auto next = [] { // splitmix64: a bijection of the counter, so no repeats within a thread
    uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  };
  static constexpr char digits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (int half = 0; half < 2; ++half) {
    auto v = next();
    for (int i = 0; i < 16; ++i)
      out[static_cast<size_t>(half * 16 + i)] = digits[(v >> (60 - 4 * i)) & 0xf];
  }
  return out;
}

bool has_crlf(std::string_view s) {
  return s.find_first_of("\r\n") != std::string_view::npos;
}

const boost::system::error_category& beast_http_category() {
  return bhttp::make_error_code(bhttp::error::bad_method).category();
}

/// Initial read buffer of a connection: Meta's webhooks and API requests fit.
constexpr size_t read_buffer_bytes = 8 * 1024;

class session : public std::enable_shared_from_this<session> {
public:
  session(tcp::socket sock, std::shared_ptr<shared_state> st)
      : socket_(std::move(sock))
      , ex_(socket_.get_executor())
      , timer_(ex_)
      , st_(std::move(st)) {
    // Beast reads min(512 bytes, free capacity) at a time, and the parser leaves little in the
    // buffer, so a 1.4 KB webhook took three recv calls; with room for a typical request it
    // takes one.
    buffer_.reserve(read_buffer_bytes);
    error_code ec;
    auto ep = socket_.remote_endpoint(ec);
    if (!ec)
      remote_ip_ = ep.address().to_string();
  }

  session(const session&) = delete;
  session& operator=(const session&) = delete;

  ~session() {
    end_stream_hooks();
    release_in_flight();
    std::lock_guard lk(st_->mtx);
    st_->sessions.erase(this);
    st_->cv.notify_all();
  }

  void start() {
    {
      std::lock_guard lk(st_->mtx);
      st_->sessions.emplace(this, weak_from_this());
    }
    asio::post(ex_, [self = shared_from_this()] { self->read_next(); });
  }

  /// Thread-safe: hands the answer for request number `seq` to the strand.
  void deliver(uint64_t seq, response r) {
    asio::post(ex_, [self = shared_from_this(), seq, r = std::move(r)]() mutable {
      self->on_deliver(seq, std::move(r));
    });
  }

  /// Thread-safe: close now if idle, else after the current response.
  void drain() {
    asio::post(ex_, [self = shared_from_this()] { self->on_drain(); });
  }

  /// Thread-safe (session_stream_writer): hands bytes, or the end, to the strand.
  void post_stream_send(std::string bytes) {
    asio::post(ex_, [self = shared_from_this(), bytes = std::move(bytes)]() mutable {
      self->stream_send(std::move(bytes));
    });
  }
  void post_stream_finish() {
    asio::post(ex_, [self = shared_from_this()] { self->stream_finish(); });
  }

  // On the strand.
  void stream_send(std::string bytes);
  void stream_finish();

private:
  enum class phase {
    idle,      ///< keep-alive, waiting for the first byte of the next request (idle_timeout)
    reading,   ///< a request is arriving (read_timeout)
    handling,  ///< the handler has it (request_timeout)
    writing,   ///< the response is being written (read_timeout)
    streaming, ///< a streamed body is open (stream_heartbeat; stalled writes end it)
    lingering, ///< sent an error and `shutdown(send)`; discarding input so the client sees it
    closed,
  };

  // ---- deadline ---------------------------------------------------------------------------

  void arm(steady::duration d) {
    auto gen = ++timer_gen_;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen](error_code ec) {
      if (!ec && gen == self->timer_gen_)
        self->on_deadline();
    });
  }

  void on_deadline() {
    switch (phase_) {
    case phase::handling:
      st_->log.warn("request not answered in time",
                    {{"method", summary_.method},
                     {"route", summary_.route},
                     {"request_id", summary_.request_id},
                     {"timeout_ms", st_->opts.request_timeout.count()}});
      write_response(response::error(503, "upstream_timeout",
                                     "the request was not answered within " +
                                         std::to_string(st_->opts.request_timeout.count()) +
                                         " ms; retry later"));
      return;
    case phase::closed:
      return;
    case phase::streaming:
      if (stream_writing_ && steady::now() - write_started_ >= st_->opts.read_timeout) {
        st_->log.info("event stream ended: a write stalled",
                      {{"route", summary_.route}, {"request_id", summary_.request_id}});
        close();
        return;
      }
      if (stream_expired()) {
        end_expired_stream();
        arm(st_->opts.read_timeout); // the last writes may still stall
        return;
      }
      if (recheck_due())
        recheck_stream();
      if (auto quiet = steady::now() - last_output_; quiet < st_->opts.stream_heartbeat) {
        arm_stream(st_->opts.stream_heartbeat - quiet); // events went out meanwhile
        return;
      }
      if (!stream_writing_ && stream_out_.empty() && !ending_ && hooks_ &&
          !hooks_->heartbeat.empty())
        stream_send(hooks_->heartbeat);
      arm_stream(st_->opts.stream_heartbeat);
      return;
    default:
      // Slow or silent clients (and stuck writes) lose their connection without an answer.
      close();
      return;
    }
  }

  // ---- reading ----------------------------------------------------------------------------

  void read_next() {
    if (phase_ == phase::closed)
      return;
    if (st_->draining.load() && buffer_.size() == 0 && !first_request_) {
      close();
      return;
    }
    parser_.emplace();
    continue_sent_ = false;
    parser_->body_limit(static_cast<std::uint64_t>(st_->opts.body_limit));
    parser_->header_limit(static_cast<std::uint32_t>(
        std::min<size_t>(st_->opts.header_limit, std::numeric_limits<std::uint32_t>::max())));
    if (first_request_ || buffer_.size() > 0) {
      phase_ = phase::reading;
      arm(st_->opts.read_timeout);
    } else {
      phase_ = phase::idle;
      arm(st_->opts.idle_timeout);
    }
    do_read();
  }

  void do_read() {
    bhttp::async_read_some(
        socket_, buffer_, *parser_,
        [self = shared_from_this()](error_code ec, size_t) { self->on_read(ec); });
  }

  void on_read(error_code ec) {
    if (phase_ == phase::closed)
      return;
    if (ec) {
      on_read_error(ec);
      return;
    }
    if (phase_ == phase::idle && (parser_->got_some() || buffer_.size() > 0)) {
      // The read deadline runs from the first byte, so trickling bytes cannot extend it.
      phase_ = phase::reading;
      arm(st_->opts.read_timeout);
    }
    if (!parser_->is_done()) {
      if (parser_->is_header_done() && !continue_sent_ && expects_continue())
        send_continue();
      else
        do_read();
      return;
    }
    dispatch();
  }

  // Clients such as curl hold back bodies over 1 KiB until they see "100 Continue" (or for a
  // second). Oversized bodies never get here: the parser rejects them on Content-Length first.
  bool expects_continue() const {
    auto it = parser_->get().find(bhttp::field::expect);
    return it != parser_->get().end() && beast::iequals(it->value(), "100-continue");
  }

  void send_continue() {
    static constexpr std::string_view interim = "HTTP/1.1 100 Continue\r\n\r\n";
    continue_sent_ = true;
    asio::async_write(socket_, asio::buffer(interim.data(), interim.size()),
                      [self = shared_from_this()](error_code ec, size_t) {
                        if (self->phase_ == phase::closed)
                          return;
                        if (ec)
                          self->close();
                        else
                          self->do_read();
                      });
  }

  void on_read_error(error_code ec) {
    if (ec == bhttp::error::body_limit) {
      reject(413, "payload_too_large",
             "request body exceeds the limit of " + std::to_string(st_->opts.body_limit) +
                 " bytes");
    } else if (ec == bhttp::error::header_limit) {
      reject(431, "headers_too_large",
             "request headers exceed the limit of " + std::to_string(st_->opts.header_limit) +
                 " bytes");
    } else if (&ec.category() == &beast_http_category() && ec != bhttp::error::end_of_stream &&
               ec != bhttp::error::partial_message) {
      reject(400, "invalid_request", "malformed HTTP request: " + ec.message());
    } else {
      // EOF, reset, or our own close on a deadline: nobody left to answer.
      close();
    }
  }

  /// Answers a request that could not be read, then closes: the stream position is unknown.
  void reject(int status, std::string_view code, std::string message) {
    request summary;
    if (parser_ && parser_->is_header_done()) {
      const auto& msg = parser_->get();
      summary.method = std::string(msg.method_string());
      summary.target = std::string(msg.target());
      summary.path = std::string(split_target(summary.target).path);
      if (auto it = msg.find("x-request-id"); it != msg.end())
        summary.request_id = std::string(it->value());
    }
    if (!sane_request_id(summary.request_id))
      summary.request_id = generate_request_id();
    summary.remote_ip = remote_ip_;
    summary_ = std::move(summary);
    cors_origin_.clear();
    started_ = steady::now();
    keep_alive_ = false;
    rejected_ = true;
    ++seq_;
    first_request_ = false;
    write_response(response::error(status, code, message));
  }

  // ---- handling ---------------------------------------------------------------------------

  void dispatch() {
    auto msg = parser_->release();
    request req;
    req.method = std::string(msg.method_string());
    req.target = std::string(msg.target());
    req.headers.reserve(std::distance(msg.begin(), msg.end()));
    for (const auto& f : msg) {
      std::string name(f.name_string());
      std::transform(name.begin(), name.end(), name.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      req.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    req.body = std::move(msg.body());
    req.remote_ip = remote_ip_;
    auto client_id = req.header("x-request-id");
    req.request_id = sane_request_id(client_id) ? std::string(client_id) : generate_request_id();
    keep_alive_ = msg.keep_alive();
    http10_ = msg.version() < 11;
    first_request_ = false;
    ++seq_;
    started_ = steady::now();
    phase_ = phase::handling;

    auto parts = split_target(req.target);
    std::optional<std::string> path;
    std::optional<std::map<std::string, std::string>> query;
    if (!parts.path.empty() && parts.path.front() == '/') {
      path = percent_decode(parts.path);
      query = parse_query(parts.query);
    }
    if (path)
      req.path = *path;
    keep_summary(req);
    cors_origin_.clear();
    auto origin = req.header("origin");
    if (!origin.empty() && st_->opts.cors.allows(origin))
      cors_origin_ = std::string(origin);
    if (parts.path.empty() || parts.path.front() != '/') {
      write_response(
          response::error(400, "invalid_request", "the request target must start with '/'"));
      return;
    }
    if (!path || !query) {
      write_response(response::error(400, "invalid_request",
                                     "malformed percent-encoding in the request target"));
      return;
    }
    req.query = std::move(*query);
    if (st_->opts.cors.enabled() && !origin.empty() && req.method == "OPTIONS" &&
        !req.header("access-control-request-method").empty()) {
      cors_origin_.clear(); // the preflight answer carries its own CORS headers
      write_response(st_->opts.cors.preflight(origin));
      return;
    }

    auto m = st_->routes->match(req.method, parts.path);
    if (m.result == route_match::outcome::not_found) {
      write_response(response::error(404, "not_found", "no route for " + req.path));
      return;
    }
    if (m.result == route_match::outcome::method_not_allowed) {
      auto r = response::error(405, "method_not_allowed",
                               "method " + req.method + " is not allowed for " + req.path +
                                   "; allowed: " + m.allow);
      r.headers.emplace_back("Allow", m.allow);
      write_response(std::move(r));
      return;
    }
    req.params = std::move(m.params);
    req.route = m.pattern;
    summary_.params = req.params;
    summary_.route = req.route;

    counted_ = true;
    st_->in_flight.fetch_add(1);
    arm(st_->opts.request_timeout);
    responder done([weak = weak_from_this(), seq = seq_](response r) {
      if (auto self = weak.lock())
        self->deliver(seq, std::move(r));
      else if (r.stream && r.stream->closed) // the connection is gone
        r.stream->closed();
    });
    try {
      (*m.target)(std::move(req), done);
    } catch (const std::exception& e) {
      st_->log.error("handler threw", {{"method", summary_.method},
                                       {"route", summary_.route},
                                       {"request_id", summary_.request_id},
                                       {"error", e.what()}});
      done(response::error(500, "internal_error", "internal error"));
    } catch (...) {
      st_->log.error("handler threw a non-standard exception",
                     {{"method", summary_.method},
                      {"route", summary_.route},
                      {"request_id", summary_.request_id}});
      done(response::error(500, "internal_error", "internal error"));
    }
  }

  void keep_summary(const request& req) {
    summary_ = request{};
    summary_.method = req.method;
    summary_.target = req.target;
    summary_.path = req.path;
    summary_.request_id = req.request_id;
    summary_.remote_ip = req.remote_ip;
    if (st_->observer)
      summary_.headers = req.headers;
  }

  void on_deliver(uint64_t seq, response r) {
    // A late answer (after the 503) or one for a connection that moved on is dropped.
    if (phase_ != phase::handling || seq != seq_) {
      if (r.stream && r.stream->closed) // a stream that never opened still hears of its end
        r.stream->closed();
      return;
    }
    write_response(std::move(r));
  }

  void on_drain() {
    if (phase_ == phase::streaming) {
      stream_finish();
      return;
    }
    bool silent =
        phase_ == phase::idle ||
        (phase_ == phase::reading && (!parser_ || (!parser_->got_some() && buffer_.size() == 0)));
    if (silent)
      close();
  }

  // ---- writing ----------------------------------------------------------------------------

  void write_response(response r) {
    if (r.status < 100 || r.status > 999) {
      st_->log.error(
          "handler answered with an invalid status",
          {{"route", summary_.route}, {"status", r.status}, {"request_id", summary_.request_id}});
      r = response::error(500, "internal_error", "internal error");
    }
    if (!cors_origin_.empty())
      cors_policy::add_headers(r.headers, cors_origin_);
    if (r.stream && r.status == 200 && summary_.method == "GET") {
      start_stream(std::move(r));
      return;
    }
    if (r.stream && r.stream->closed) // never opened
      r.stream->closed();
    phase_ = phase::writing;
    arm(st_->opts.read_timeout);
    status_ = r.status;
    close_after_ = !keep_alive_ || st_->draining.load();
    res_.emplace();
    res_->version(11);
    res_->result(static_cast<unsigned>(r.status));
    for (auto& [name, value] : r.headers) {
      if (name.empty() || has_crlf(name) || has_crlf(value))
        continue;
      res_->insert(name, value);
    }
    if (!r.content_type.empty() && !has_crlf(r.content_type))
      res_->set(bhttp::field::content_type, r.content_type);
    res_->set("X-Request-Id", summary_.request_id);
    res_->keep_alive(!close_after_);
    res_->body() = std::move(r.body);
    res_->prepare_payload();
    if (r.status == 204) // RFC 9110 8.6: no Content-Length on a 204 (prepare_payload adds 0)
      res_->erase(bhttp::field::content_length);
    if (summary_.method == "HEAD")
      res_->body().clear(); // headers only; Content-Length stays the GET answer's
    bhttp::async_write(socket_, *res_,
                       [self = shared_from_this()](error_code ec, size_t) { self->on_write(ec); });
  }

  /// The request is answered: the observer hears of it and it no longer counts as in flight.
  void report_complete() {
    if (st_->observer) {
      try {
        st_->observer->on_complete(summary_, status_, steady::now() - started_);
      } catch (const std::exception& e) {
        st_->log.error("request observer threw", {{"error", e.what()}});
      }
    }
    release_in_flight();
  }

  void on_write(error_code ec) {
    res_.reset();
    report_complete();
    if (phase_ == phase::closed)
      return;
    if (ec) {
      close();
      return;
    }
    if (close_after_) {
      // Lingering matters only when input may be left unread (a rejected request, or pipelined
      // ones); otherwise a plain close lets drain() finish without waiting on the client.
      if (rejected_ || buffer_.size() > 0)
        linger();
      else
        close();
      return;
    }
    read_next();
  }

  void release_in_flight() {
    if (counted_) {
      counted_ = false;
      st_->in_flight.fetch_sub(1);
    }
  }

  // ---- streaming --------------------------------------------------------------------------

  void start_stream(response r);

  bool stream_expired() const {
    return hooks_ && hooks_->ends_at && steady::now() >= *hooks_->ends_at;
  }

  bool rechecks() const { return hooks_ && hooks_->recheck && hooks_->recheck_every.count() > 0; }

  bool recheck_due() const { return rechecks() && steady::now() >= next_recheck_; }

  void recheck_stream();

  /// The next tick of a stream: a heartbeat after `quiet`, unless its end time or its next
  /// recheck comes first.
  void arm_stream(steady::duration quiet) {
    auto now = steady::now();
    if (hooks_ && hooks_->ends_at)
      quiet = std::min(quiet, *hooks_->ends_at - now);
    if (rechecks())
      quiet = std::min(quiet, next_recheck_ - now);
    arm(std::max(steady::duration::zero(), quiet));
  }

  void end_expired_stream() {
    if (ending_)
      return;
    st_->log.info("event stream ended: its credential expired",
                  {{"route", summary_.route}, {"request_id", summary_.request_id}});
    if (!hooks_->last_words.empty())
      stream_send(hooks_->last_words);
    stream_finish();
  }

  static std::string chunk_of(const std::string& bytes) {
    static constexpr char digits[] = "0123456789abcdef";
    std::string size;
    for (auto n = bytes.size(); n > 0; n >>= 4)
      size.insert(size.begin(), digits[n & 0xf]);
    return size + "\r\n" + bytes + "\r\n";
  }

  /// Writes everything queued as one buffer; one write at a time.
  void pump() {
    if (phase_ != phase::streaming || stream_writing_)
      return;
    if (stream_out_.empty()) {
      if (ending_)
        close();
      return;
    }
    stream_buf_.clear();
    for (auto& part : stream_out_)
      stream_buf_ += part;
    stream_out_.clear();
    stream_writing_ = true;
    write_started_ = steady::now();
    asio::async_write(socket_, asio::buffer(stream_buf_),
                      [self = shared_from_this()](error_code ec, size_t) {
                        self->stream_writing_ = false;
                        self->last_output_ = steady::now();
                        self->queued_ -= std::min(self->queued_, self->stream_buf_.size());
                        if (self->phase_ != phase::streaming)
                          return;
                        if (ec) {
                          self->close();
                          return;
                        }
                        self->pump();
                      });
  }

  void queue_raw(std::string bytes) {
    queued_ += bytes.size();
    stream_out_.push_back(std::move(bytes));
    pump();
  }

  /// A streaming client sends nothing more; its EOF (or reset) ends the stream. Anything it
  /// does send is discarded.
  void watch_client() {
    socket_.async_read_some(buffer_.prepare(4096),
                            [self = shared_from_this()](error_code ec, size_t) {
                              if (self->phase_ != phase::streaming)
                                return;
                              if (ec) {
                                self->close();
                                return;
                              }
                              self->watch_client();
                            });
  }

  void end_stream_hooks();

  // ---- closing ----------------------------------------------------------------------------

  /// Half-closes and reads until the client closes, so a client still sending (an oversized
  /// body) receives our answer instead of a connection reset.
  void linger() {
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_send, ec);
    if (ec) {
      close();
      return;
    }
    phase_ = phase::lingering;
    arm(std::min<steady::duration>(st_->opts.read_timeout, std::chrono::seconds(1)));
    buffer_.consume(buffer_.size());
    linger_read();
  }

  void linger_read() {
    socket_.async_read_some(
        buffer_.prepare(16 * 1024), [self = shared_from_this()](error_code ec, size_t n) {
          self->lingered_ += n;
          if (ec || self->phase_ != phase::lingering || self->lingered_ > (8u << 20)) {
            self->close();
            return;
          }
          self->linger_read();
        });
  }

  void close() {
    if (phase_ == phase::closed)
      return;
    phase_ = phase::closed;
    end_stream_hooks();
    ++timer_gen_;
    timer_.cancel();
    error_code ec;
    socket_.shutdown(tcp::socket::shutdown_both, ec);
    socket_.close(ec);
  }

  tcp::socket socket_;
  asio::any_io_executor ex_; ///< the connection's strand
  asio::steady_timer timer_;
  std::shared_ptr<shared_state> st_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::optional<bhttp::response<bhttp::string_body>> res_; ///< alive while being written
  std::string remote_ip_;
  request summary_; ///< the current request without body, for logs and the observer
  steady::time_point started_;
  phase phase_ = phase::reading;
  uint64_t timer_gen_ = 0; ///< stale timer completions compare unequal and are ignored
  uint64_t seq_ = 0;       ///< number of the current request; answers for older ones are dropped
  size_t lingered_ = 0;
  int status_ = 0;
  bool first_request_ = true;
  bool keep_alive_ = true;
  bool close_after_ = false;
  bool continue_sent_ = false;
  bool rejected_ = false; ///< the request could not be read; the stream position is unknown
  bool counted_ = false;  ///< this session holds one unit of shared_state::in_flight
  // A streamed response (phase::streaming).
  std::shared_ptr<stream_hooks> hooks_;
  std::shared_ptr<session_stream_writer> writer_;
  std::vector<std::string> stream_out_; ///< framed chunks not yet handed to a write
  std::string stream_buf_;              ///< the bytes of the write in progress
  size_t queued_ = 0;                   ///< bytes queued or being written
  steady::time_point write_started_;
  steady::time_point last_output_;  ///< when the last write completed (heartbeats fill silences)
  steady::time_point next_recheck_; ///< when stream_hooks::recheck runs next
  std::string cors_origin_;         ///< the request's Origin when CORS allows it (answers say so)
  bool stream_writing_ = false;
  bool ending_ = false; ///< the terminating chunk is queued
  bool http10_ = false; ///< the request was HTTP/1.0: a streamed body is not chunked
};

/// Holds the session weakly and nothing of Asio's (an executor would refer to the io_context):
/// a writer kept after its server is gone, by a hub or a test, is then harmless to destroy.
class session_stream_writer final : public stream_writer {
public:
  explicit session_stream_writer(std::weak_ptr<session> s)
      : session_(std::move(s)) {}

  bool send(std::string bytes) override {
    if (done_.load())
      return false;
    if (!bytes.empty())
      if (auto self = session_.lock())
        self->post_stream_send(std::move(bytes));
    return true;
  }

  void finish() override {
    if (done_.exchange(true))
      return;
    if (auto self = session_.lock())
      self->post_stream_finish();
  }

  bool done() const override { return done_.load(); }
  void mark_done() { done_ = true; }

private:
  std::weak_ptr<session> session_;
  std::atomic<bool> done_{false};
};

void session::start_stream(response r) {
  phase_ = phase::streaming;
  status_ = r.status;
  hooks_ = std::move(r.stream);
  std::string head = "HTTP/1.1 " + std::to_string(r.status) + " " +
                     std::string(bhttp::obsolete_reason(static_cast<bhttp::status>(r.status))) +
                     "\r\n";
  for (auto& [name, value] : r.headers)
    if (!name.empty() && !has_crlf(name) && !has_crlf(value))
      head += name + ": " + value + "\r\n";
  if (!r.content_type.empty() && !has_crlf(r.content_type))
    head += "Content-Type: " + r.content_type + "\r\n";
  // HTTP/1.0 knows no chunked encoding: its body simply ends with the connection.
  head += "X-Request-Id: " + summary_.request_id +
          (http10_ ? "\r\nConnection: close\r\n\r\n"
                   : "\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
  writer_ = std::make_shared<session_stream_writer>(weak_from_this());
  queue_raw(std::move(head));
  // As far as in-flight accounting and the access log go, the request is answered now.
  report_complete();
  if (rechecks())
    next_recheck_ = steady::now() + hooks_->recheck_every;
  arm_stream(st_->opts.stream_heartbeat);
  watch_client();
  if (hooks_->opened) {
    try {
      hooks_->opened(writer_);
    } catch (const std::exception& e) {
      st_->log.error("stream open handler threw", {{"route", summary_.route}, {"error", e.what()}});
      close();
      return;
    } catch (...) {
      st_->log.error("stream open handler threw a non-standard exception",
                     {{"route", summary_.route}});
      close();
      return;
    }
  }
  // Opened while the server drains (drain() found this request still being handled): nothing
  // else would end it.
  if (st_->draining.load())
    stream_finish();
}

void session::recheck_stream() {
  next_recheck_ = steady::now() + hooks_->recheck_every;
  try {
    hooks_->recheck(writer_);
  } catch (const std::exception& e) {
    st_->log.error("stream recheck threw", {{"route", summary_.route}, {"error", e.what()}});
  } catch (...) {
    st_->log.error("stream recheck threw a non-standard exception", {{"route", summary_.route}});
  }
}

void session::stream_send(std::string bytes) {
  if (phase_ != phase::streaming || ending_)
    return;
  if (queued_ + bytes.size() > st_->opts.stream_queue_limit) {
    st_->log.warn("event stream ended: the client reads too slowly",
                  {{"route", summary_.route},
                   {"request_id", summary_.request_id},
                   {"queued_bytes", queued_}});
    close();
    return;
  }
  queue_raw(http10_ ? std::move(bytes) : chunk_of(bytes));
}

void session::stream_finish() {
  if (phase_ != phase::streaming || ending_)
    return;
  ending_ = true;
  if (writer_)
    writer_->mark_done();
  if (http10_)
    pump(); // closes once the queue is written
  else
    queue_raw("0\r\n\r\n");
}

void session::end_stream_hooks() {
  if (writer_)
    writer_->mark_done();
  if (auto hooks = std::move(hooks_); hooks && hooks->closed) {
    try {
      hooks->closed();
    } catch (const std::exception& e) {
      st_->log.error("stream close handler threw", {{"error", e.what()}});
    }
  }
}

std::string endpoint_text(const std::string& address, uint16_t port) {
  if (address.find(':') != std::string::npos)
    return "[" + address + "]:" + std::to_string(port);
  return address + ":" + std::to_string(port);
}

} // namespace

struct server::impl {
  impl(server_options opts, std::shared_ptr<const router> routes,
       std::shared_ptr<request_observer> observer)
      : ioc(std::max(1, opts.io_threads))
      , st(std::make_shared<shared_state>())
      , acceptor(asio::make_strand(ioc))
      , retry(acceptor.get_executor()) {
    if (!routes)
      throw std::invalid_argument("http::server needs a router");
    st->opts = std::move(opts);
    st->opts.io_threads = std::max(1, st->opts.io_threads);
    st->routes = std::move(routes);
    st->observer = std::move(observer);
  }

  void do_accept() {
    acceptor.async_accept(asio::make_strand(ioc), [this](error_code ec, auto sock) {
      if (!acceptor.is_open())
        return;
      if (ec) {
        // EMFILE and friends: back off briefly instead of spinning on the failing accept.
        st->log.warn("accept failed", {{"error", ec.message()}});
        retry.expires_after(std::chrono::milliseconds(100));
        retry.async_wait([this](error_code wec) {
          if (!wec && acceptor.is_open())
            do_accept();
        });
        return;
      }
      std::make_shared<session>(tcp::socket(std::move(sock)), st)->start();
      do_accept();
    });
  }

  bool on_io_thread() const {
    auto me = std::this_thread::get_id();
    return std::any_of(threads.begin(), threads.end(),
                       [&](const std::thread& t) { return t.get_id() == me; });
  }

  void run_loop() { run_io_loop(ioc, st->log, "exception escaped an HTTP I/O handler"); }

  // Declared first so it is destroyed last: sockets, timers and the acceptor refer to it.
  asio::io_context ioc;
  std::shared_ptr<shared_state> st;
  tcp::acceptor acceptor;
  asio::steady_timer retry;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  uint16_t port = 0;
  bool started = false;
  std::atomic<bool> accepting{false};
};

server::server(server_options opts, std::shared_ptr<const router> routes,
               std::shared_ptr<request_observer> observer)
    : impl_(std::make_unique<impl>(std::move(opts), std::move(routes), std::move(observer))) {}

server::~server() {
  stop();
}

void server::start() {
  auto& m = *impl_;
  if (m.started)
    throw std::logic_error("http::server::start called twice");
  const auto& o = m.st->opts;
  auto where = endpoint_text(o.address, o.port);
  error_code ec;
  auto addr = asio::ip::make_address(o.address, ec);
  if (ec)
    throw std::runtime_error("invalid HTTP listen address '" + o.address + "'");
  tcp::endpoint ep{addr, o.port};
  m.acceptor.open(ep.protocol(), ec);
  if (!ec)
    m.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec)
    m.acceptor.bind(ep, ec);
  if (ec == asio::error::address_in_use)
    throw std::runtime_error(where + " is already in use");
  if (ec == boost::system::errc::address_not_available)
    throw std::runtime_error("cannot listen on " + where + ": no such local address");
  if (ec == asio::error::access_denied)
    throw std::runtime_error("cannot listen on " + where + ": permission denied");
  if (!ec)
    m.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec)
    throw std::runtime_error("cannot listen on " + where + ": " + ec.message());
  m.port = m.acceptor.local_endpoint().port();
  m.started = true;
  m.accepting = true;
  m.do_accept();
  m.work.emplace(m.ioc.get_executor());
  for (int i = 0; i < o.io_threads; ++i)
    m.threads.emplace_back([&m] { m.run_loop(); });
  m.st->log.debug("listening",
                  {{"endpoint", endpoint_text(o.address, m.port)}, {"io_threads", o.io_threads}});
}

uint16_t server::port() const {
  return impl_->port;
}

void server::stop_accepting() {
  auto& m = *impl_;
  if (!m.accepting.exchange(false))
    return;
  auto close_acceptor = [&m] {
    error_code ec;
    m.acceptor.close(ec);
    m.retry.cancel();
  };
  if (m.threads.empty() || m.ioc.stopped()) {
    close_acceptor();
    return;
  }
  if (m.on_io_thread()) {
    // Waiting here could deadlock the only I/O thread; the close happens right after we return.
    asio::post(m.acceptor.get_executor(), close_acceptor);
    return;
  }
  std::promise<void> closed;
  auto fut = closed.get_future();
  asio::post(m.acceptor.get_executor(), [&] {
    close_acceptor();
    closed.set_value();
  });
  fut.wait();
}

bool server::drain(std::chrono::milliseconds timeout) {
  auto& m = *impl_;
  stop_accepting();
  m.st->draining = true;
  std::vector<std::shared_ptr<session>> live;
  {
    std::lock_guard lk(m.st->mtx);
    for (auto& [_, weak] : m.st->sessions)
      if (auto s = weak.lock())
        live.push_back(std::move(s));
  }
  for (auto& s : live)
    s->drain();
  live.clear(); // may destroy sessions, which takes the lock: do it outside
  std::unique_lock lk(m.st->mtx);
  bool ok = m.st->cv.wait_for(lk, timeout, [&] { return m.st->sessions.empty(); });
  if (!ok)
    m.st->log.warn("drain timed out", {{"timeout_ms", timeout.count()},
                                       {"connections", m.st->sessions.size()},
                                       {"in_flight", m.st->in_flight.load()}});
  return ok;
}

void server::stop() {
  auto& m = *impl_;
  m.accepting = false;
  if (m.threads.empty())
    return;
  m.work.reset();
  m.ioc.stop();
  for (auto& t : m.threads)
    t.join();
  m.threads.clear();
  error_code ec;
  m.acceptor.close(ec);
}

size_t server::in_flight() const {
  return impl_->st->in_flight.load();
}

size_t server::connections() const {
  std::lock_guard lk(impl_->st->mtx);
  return impl_->st->sessions.size();
}

} // namespace parley::http
