// The only translation unit with the client's Beast, Asio-SSL and OpenSSL code.
//
// Shape: every request is an `exchange` (its deadline timer runs on its own strand); every socket
// is a `connection` whose steps run on the connection's strand. The pool bookkeeping (idle lists,
// open counts, FIFO of waiting exchanges, the registry used by stop()) is one mutex-guarded
// `client_state`; the mutex is never held while a callback runs or an I/O operation starts.
// An exchange completes exactly once, through whichever of {connection, deadline, stop()} flips
// its `finished` flag first; the others then only clean up.
#include "http/client.hpp"
#include "http/io_loop.hpp"

#include <utility> // before Asio: g++ 12 in C++20 mode needs it (see PLATFORM.md)

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "runtime/logging.hpp"

#ifndef PARLEY_VERSION
#define PARLEY_VERSION "1"
#endif

namespace parley::http {

std::string client_response::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name)
      return value;
  return {};
}

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using strand = asio::strand<asio::io_context::executor_type>;
using kind = client_error::kind;

constexpr uint32_t response_header_limit = 64 * 1024;

// ---- request validation ---------------------------------------------------------------------

struct target_url {
  bool tls = false;
  std::string host; ///< lower-case; IPv6 without brackets
  uint16_t port = 0;
  std::string target;      ///< path and query, at least "/"
  std::string host_header; ///< host[:port] as sent in Host (default port omitted)
  std::string authority;   ///< host:port, for messages
  std::string pool_key;    ///< scheme://host:port
};

std::string to_lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_token(std::string_view s) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](unsigned char c) {
    return std::isalnum(c) || extra.find(static_cast<char>(c)) != std::string_view::npos;
  });
}

bool valid_header_value(std::string_view v) {
  return std::none_of(v.begin(), v.end(),
                      [](char c) { return c == '\r' || c == '\n' || c == '\0'; });
}

std::optional<target_url> parse_url(std::string_view url, std::string& why) {
  for (unsigned char c : url) {
    if (c <= 0x20 || c >= 0x7f) {
      why = "the URL contains a space, a control or a non-ASCII character; percent-encode it";
      return std::nullopt;
    }
  }
  auto sep = url.find("://");
  if (sep == std::string_view::npos) {
    why = "the URL must start with http:// or https://";
    return std::nullopt;
  }
  target_url out;
  auto scheme = to_lower(url.substr(0, sep));
  if (scheme == "https") {
    out.tls = true;
  } else if (scheme != "http") {
    why = "unsupported URL scheme '" + scheme + "'; use http or https";
    return std::nullopt;
  }
  auto rest = url.substr(sep + 3);
  auto authority_end = rest.find_first_of("/?#");
  auto authority = rest.substr(0, authority_end);
  auto tail =
      authority_end == std::string_view::npos ? std::string_view{} : rest.substr(authority_end);
  tail = tail.substr(0, tail.find('#'));
  if (authority.find('@') != std::string_view::npos) {
    why = "credentials in the URL are not supported; send them in a header";
    return std::nullopt;
  }
  std::string_view host, port_text;
  bool ipv6 = false;
  if (!authority.empty() && authority.front() == '[') {
    auto close = authority.find(']');
    if (close == std::string_view::npos) {
      why = "unterminated IPv6 address in the URL";
      return std::nullopt;
    }
    host = authority.substr(1, close - 1);
    auto after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') {
      why = "unexpected characters after the IPv6 address in the URL";
      return std::nullopt;
    }
    if (!after.empty())
      port_text = after.substr(1);
    error_code ec;
    asio::ip::make_address_v6(std::string(host), ec);
    if (ec) {
      why = "invalid IPv6 address '" + std::string(host) + "' in the URL";
      return std::nullopt;
    }
    ipv6 = true;
  } else {
    auto colon = authority.find(':');
    host = authority.substr(0, colon);
    if (colon != std::string_view::npos)
      port_text = authority.substr(colon + 1);
    bool host_ok = std::all_of(host.begin(), host.end(), [](unsigned char c) {
      return std::isalnum(c) || c == '-' || c == '.' || c == '_';
    });
    if (!host_ok) {
      why = "invalid host '" + std::string(host) + "' in the URL";
      return std::nullopt;
    }
  }
  if (host.empty()) {
    why = "the URL has no host";
    return std::nullopt;
  }
  unsigned long port = out.tls ? 443 : 80;
  bool explicit_port =
      authority.find(':', ipv6 ? authority.find(']') : 0) != std::string_view::npos;
  if (explicit_port) {
    bool digits = !port_text.empty() && port_text.size() <= 5 &&
                  std::all_of(port_text.begin(), port_text.end(),
                              [](unsigned char c) { return std::isdigit(c); });
    port = digits ? std::stoul(std::string(port_text)) : 0;
    if (port == 0 || port > 65535) {
      why = "invalid port '" + std::string(port_text) + "' in the URL";
      return std::nullopt;
    }
  }
  out.host = to_lower(host);
  out.port = static_cast<uint16_t>(port);
  auto bracketed = ipv6 ? "[" + out.host + "]" : out.host;
  out.authority = bracketed + ":" + std::to_string(out.port);
  out.host_header = port == (out.tls ? 443u : 80u) ? bracketed : out.authority;
  out.pool_key = scheme + "://" + out.authority;
  out.target = tail.empty() || tail.front() != '/' ? "/" + std::string(tail) : std::string(tail);
  return out;
}

bool owned_header(std::string_view name) {
  auto n = to_lower(name);
  return n == "host" || n == "content-length" || n == "transfer-encoding" || n == "connection";
}

/// Builds the wire request, or says why the input cannot be sent.
std::optional<bhttp::request<bhttp::string_body>>
build_request(client_request& req, const target_url& url, std::string& why) {
  if (!is_token(req.method)) {
    why = "invalid HTTP method '" + req.method + "'";
    return std::nullopt;
  }
  bhttp::request<bhttp::string_body> msg;
  msg.version(11);
  msg.method_string(req.method);
  msg.target(url.target);
  for (const auto& [name, value] : req.headers) {
    if (!is_token(name) || !valid_header_value(value)) {
      why = "invalid request header '" + name + "' (names are tokens; values contain no CR/LF)";
      return std::nullopt;
    }
    if (!owned_header(name))
      msg.insert(name, value);
  }
  msg.set(bhttp::field::host, url.host_header);
  msg.set(bhttp::field::connection, "keep-alive");
  if (msg.find(bhttp::field::user_agent) == msg.end())
    msg.set(bhttp::field::user_agent, "parley/" PARLEY_VERSION);
  msg.body() = std::move(req.body);
  msg.prepare_payload();
  return msg;
}

// ---- shared state ---------------------------------------------------------------------------

class connection;

/// One request from send() until its callback ran.
struct exchange {
  exchange(asio::io_context& ioc, target_url u, bhttp::request<bhttp::string_body> m,
           client_callback c, std::chrono::milliseconds t)
      : ex(asio::make_strand(ioc))
      , deadline(ex)
      , url(std::move(u))
      , msg(std::move(m))
      , cb(std::move(c))
      , timeout(t) {}

  strand ex; ///< the deadline's strand
  asio::steady_timer deadline;
  const target_url url;
  bhttp::request<bhttp::string_body> msg; ///< touched only by the connection that holds it
  client_callback cb;                     ///< consumed by whoever wins `finished`
  const std::chrono::milliseconds timeout;
  std::atomic<bool> finished{false};
  std::atomic<bool> write_started{false};
  bool retried = false;           ///< connection strands only; exchanges move between them via mtx
  bool queued = false;            ///< guarded by client_state::mtx
  std::weak_ptr<connection> conn; ///< guarded by client_state::mtx
};

struct host_pool {
  size_t open = 0; ///< connections of this pool, connecting and idle ones included
  std::vector<std::shared_ptr<connection>> idle; ///< back() is the most recently used
  std::deque<std::shared_ptr<exchange>> waiting; ///< FIFO of exchanges without a connection
};

struct client_state {
  client_options opts;
  asio::io_context* ioc = nullptr;
  ssl::context tls{ssl::context::tls_client};
  parley::log::logger log{"http.client"};

  mutable std::mutex mtx; // guards everything below
  bool stopped = false;
  std::unordered_map<std::string, host_pool> pools;
  std::unordered_map<const exchange*, std::shared_ptr<exchange>> live;
  std::unordered_map<const connection*, std::weak_ptr<connection>> connections;
  size_t open_total = 0;
  size_t idle_total = 0;
};

client_error make_error(kind k, std::string message) {
  client_error e;
  e.what = k;
  e.message = std::move(message);
  return e;
}

client_error stopped_error() {
  return make_error(kind::io, "client stopped");
}

/// Completes `x` once; later calls do nothing. With `abort_connection` the connection working on
/// it (if any) is closed, since the state of its stream is unknown from here.
void finish(client_state& st, const std::shared_ptr<exchange>& x, client_result r,
            bool abort_connection);

// ---- connection -----------------------------------------------------------------------------

class connection : public std::enable_shared_from_this<connection> {
public:
  connection(std::shared_ptr<client_state> st, const target_url& url)
      : st_(std::move(st))
      , tls_host_(url.host)
      , authority_(url.authority)
      , pool_key_(url.pool_key)
      , port_(url.port)
      , ex_(asio::make_strand(*st_->ioc))
      , resolver_(ex_)
      , timer_(ex_) {
    if (url.tls)
      tls_.emplace(ex_, st_->tls);
    else
      plain_.emplace(ex_);
  }

  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Connects, then sends `x`. Thread-safe.
  void post_start(std::shared_ptr<exchange> x) {
    asio::post(ex_, [self = shared_from_this(), x = std::move(x)]() mutable {
      self->start(std::move(x));
    });
  }

  /// Sends `x` over this already connected (previously idle) connection. Thread-safe.
  void post_reuse(std::shared_ptr<exchange> x) {
    asio::post(ex_, [self = shared_from_this(), x = std::move(x)]() mutable {
      self->reuse(std::move(x));
    });
  }

  /// Closes the connection if it is still working on `x`. Thread-safe.
  void post_abort(std::shared_ptr<exchange> x) {
    asio::post(ex_, [self = shared_from_this(), x = std::move(x)] {
      if (self->current_ == x)
        self->close();
    });
  }

  /// Closes the connection whatever it does (stop()). Thread-safe.
  void post_close() {
    asio::post(ex_, [self = shared_from_this()] { self->close(); });
  }

  /// Only under client_state::mtx.
  bool& idle_flag() { return idle_; }

private:
  // ---- connecting -------------------------------------------------------------------------

  void start(std::shared_ptr<exchange> x) {
    current_ = std::move(x);
    reused_ = false;
    if (abandoned()) {
      discard();
      return;
    }
    arm(st_->opts.connect_timeout, [](connection& c) {
      c.connect_timed_out_ = true;
      c.close();
    });
    resolver_.async_resolve(
        tls_host_, std::to_string(port_), tcp::resolver::numeric_service,
        [self = shared_from_this()](error_code ec, tcp::resolver::results_type r) {
          self->on_resolve(ec, std::move(r));
        });
  }

  void on_resolve(error_code ec, tcp::resolver::results_type results) {
    if (abandoned()) {
      discard();
      return;
    }
    if (ec || connect_timed_out_) {
      fail(kind::connect, connect_timed_out_ ? connect_timeout_text("connect to ")
                                             : "cannot resolve " + tls_host_ + ": " + ec.message());
      return;
    }
    asio::async_connect(socket(), results,
                        [self = shared_from_this()](error_code cec, const tcp::endpoint&) {
                          self->on_connect(cec);
                        });
  }

  void on_connect(error_code ec) {
    if (abandoned()) {
      discard();
      return;
    }
    if (ec || connect_timed_out_) {
      fail(kind::connect, connect_timed_out_
                              ? connect_timeout_text("connect to ")
                              : "connect to " + authority_ + " failed: " + ec.message());
      return;
    }
    error_code ignored;
    socket().set_option(tcp::no_delay(true), ignored);
    if (!tls_) {
      connected();
      return;
    }
    if (!prepare_tls()) {
      fail(kind::tls, "cannot set up TLS for " + authority_);
      return;
    }
    tls_->async_handshake(ssl::stream_base::client,
                          [self = shared_from_this()](error_code hec) { self->on_handshake(hec); });
  }

  /// SNI for names (RFC 6066 forbids IP literals there) and host-name or IP verification.
  bool prepare_tls() {
    SSL* handle = tls_->native_handle();
    error_code not_ip;
    asio::ip::make_address(tls_host_, not_ip);
    if (not_ip && SSL_set_tlsext_host_name(handle, tls_host_.c_str()) != 1)
      return false;
    if (!st_->opts.verify_peer)
      return true;
    if (not_ip)
      return SSL_set1_host(handle, tls_host_.c_str()) == 1;
    return X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(handle), tls_host_.c_str()) == 1;
  }

  void on_handshake(error_code ec) {
    if (abandoned()) {
      discard();
      return;
    }
    if (ec || connect_timed_out_) {
      if (connect_timed_out_) {
        fail(kind::tls, connect_timeout_text("TLS handshake with "));
        return;
      }
      std::string message = "TLS handshake with " + authority_ + " failed: " + ec.message();
      long verify = SSL_get_verify_result(tls_->native_handle());
      if (verify != X509_V_OK)
        message += std::string(" (") + X509_verify_cert_error_string(verify) + ")";
      fail(kind::tls, std::move(message));
      return;
    }
    connected();
  }

  std::string connect_timeout_text(std::string_view what) const {
    return std::string(what) + authority_ + " timed out after " +
           std::to_string(st_->opts.connect_timeout.count()) + " ms";
  }

  void connected() {
    disarm();
    send_request();
  }

  // ---- one exchange -----------------------------------------------------------------------

  void reuse(std::shared_ptr<exchange> x) {
    disarm();
    current_ = std::move(x);
    reused_ = true;
    if (abandoned()) {
      // Its deadline passed (or stop()) before we got to it: nothing was sent, the connection
      // is as good as before.
      current_.reset();
      release(true);
      return;
    }
    if (peer_went_away()) {
      // Nothing was written, so moving the exchange elsewhere is free of duplicates; this does
      // not use up its one retry.
      hand_to_fresh_connection(std::move(current_));
      return;
    }
    send_request();
  }

  /// Non-blocking look at an idle socket: EOF (the server closed it, typically on its own idle
  /// timeout) or unsolicited bytes (a TLS close_notify, garbage) both mean "do not use". Catches
  /// most stale connections before anything is written; the retry below covers the rest.
  bool peer_went_away() {
    if (buffer_.size() > 0)
      return true;
    char probe = 0;
    auto n = ::recv(socket().native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return !(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
  }

  void send_request() {
    current_->write_started = true;
    with_stream([this](auto& stream) {
      bhttp::async_write(stream, current_->msg, [self = shared_from_this()](error_code ec, size_t) {
        self->on_write(ec);
      });
    });
  }

  void on_write(error_code ec) {
    if (abandoned()) {
      discard();
      return;
    }
    if (ec) {
      if (may_retry(ec))
        retry();
      else
        fail(kind::io, "sending the request to " + authority_ + " failed: " + ec.message());
      return;
    }
    read_response();
  }

  void read_response() {
    parser_.emplace();
    parser_->body_limit(static_cast<std::uint64_t>(st_->opts.max_response_body));
    parser_->header_limit(response_header_limit);
    if (current_->msg.method() == bhttp::verb::head)
      parser_->skip(true);
    // Header first: Beast 1.74 loses the body_limit error of an oversized Content-Length when
    // header and body arrive in one buffer and the parser is eager (as async_read makes it).
    with_stream([this](auto& stream) {
      bhttp::async_read_header(
          stream, buffer_, *parser_,
          [self = shared_from_this()](error_code ec, size_t) { self->on_header(ec); });
    });
  }

  void on_header(error_code ec) {
    if (abandoned()) {
      discard();
      return;
    }
    if (!ec && parser_->content_length() &&
        *parser_->content_length() > st_->opts.max_response_body && !parser_->is_done())
      ec = bhttp::error::body_limit;
    if (ec) {
      on_read_error(ec);
      return;
    }
    if (parser_->is_done()) {
      on_read(ec);
      return;
    }
    with_stream([this](auto& stream) {
      bhttp::async_read(
          stream, buffer_, *parser_,
          [self = shared_from_this()](error_code rec, size_t) { self->on_read(rec); });
    });
  }

  void on_read_error(error_code ec) {
    if (ec == bhttp::error::body_limit) {
      fail(kind::too_large, "the response from " + authority_ + " exceeds the limit of " +
                                std::to_string(st_->opts.max_response_body) + " bytes");
    } else if (!parser_->got_some() && buffer_.size() == 0 && may_retry(ec)) {
      retry();
    } else {
      fail(kind::io, "reading the response from " + authority_ + " failed: " + ec.message());
    }
  }

  void on_read(error_code ec) {
    if (abandoned()) {
      discard();
      return;
    }
    bool eof_delimited = false;
    if (ec == ssl::error::stream_truncated && parser_->is_header_done() && parser_->need_eof()) {
      // A body delimited by the end of the connection, closed without close_notify: the body is
      // as complete as it can be known to be.
      error_code eof;
      parser_->put_eof(eof);
      if (!eof) {
        ec = {};
        eof_delimited = true;
      }
    }
    if (ec) {
      on_read_error(ec);
      return;
    }
    auto& res = parser_->get();
    if (res.result_int() >= 100 && res.result_int() < 200 && res.result_int() != 101) {
      read_response(); // interim (100 Continue, 103 Early Hints): the real answer follows
      return;
    }
    client_response out;
    out.status = static_cast<int>(res.result_int());
    out.headers.reserve(std::distance(res.begin(), res.end()));
    for (const auto& f : res)
      out.headers.emplace_back(to_lower({f.name_string().data(), f.name_string().size()}),
                               std::string(f.value()));
    out.body = std::move(res.body());
    out.resent = current_->retried;
    bool keep = res.keep_alive() && !eof_delimited && !parser_->need_eof() &&
                res.result_int() != 101 && buffer_.size() == 0;
    parser_.reset();
    auto x = std::move(current_);
    // Back to the pool before the callback runs, so a request sent from the callback (or right
    // after it) finds this connection idle.
    release(keep);
    finish(*st_, x, std::move(out), false);
  }

  // ---- failure and retry ------------------------------------------------------------------

  /// Retry once, only on a connection that served a request before (the classic keep-alive race:
  /// the server closed it while our request was on its way) and only when the peer closed or
  /// reset it before a single byte of the response arrived.
  ///
  /// Duplicate risk: "closed before answering" does not prove the server never read the
  /// request. A server that read it, acted on it (sent the WhatsApp message) and then crashed or
  /// closed looks exactly the same from here, and the retry sends the request a second time.
  /// That risk is accepted for the one retry because the race with an idle-closing server is
  /// far more common, and the stale-socket probe in reuse() already avoids most of it without
  /// any write. If the retry fails too, the error reports may_have_reached_server() so the
  /// caller counts a possible duplicate.
  bool may_retry(error_code ec) const {
    bool peer_closed = ec == bhttp::error::end_of_stream || ec == asio::error::eof ||
                       ec == asio::error::connection_reset || ec == asio::error::broken_pipe ||
                       ec == ssl::error::stream_truncated;
    return peer_closed && reused_ && !current_->retried;
  }

  void retry() {
    current_->retried = true;
    st_->log.debug("keep-alive connection closed by the peer; retrying once on a new one",
                   {{"endpoint", authority_}});
    hand_to_fresh_connection(std::move(current_));
  }

  /// Gives `x` to a brand-new connection that takes over this one's slot in the pool.
  void hand_to_fresh_connection(std::shared_ptr<exchange> x) {
    close();
    std::shared_ptr<connection> fresh;
    {
      std::lock_guard lk(st_->mtx);
      dropped_ = true;
      st_->connections.erase(this);
      if (!st_->stopped) {
        fresh = std::make_shared<connection>(st_, x->url);
        st_->connections.emplace(fresh.get(), fresh);
        x->conn = fresh;
      } else {
        leave_pool_locked();
      }
    }
    if (fresh)
      fresh->post_start(std::move(x));
    else
      finish(*st_, x, stopped_error(), false);
  }

  void fail(kind k, std::string message) {
    auto x = std::move(current_);
    discard();
    finish(*st_, x, make_error(k, std::move(message)), false);
  }

  // ---- pool membership --------------------------------------------------------------------

  /// After a response: idle in the pool (or straight to the next waiting exchange) when `keep`,
  /// else closed.
  void release(bool keep) {
    std::shared_ptr<exchange> next;
    {
      std::lock_guard lk(st_->mtx);
      keep = keep && !st_->stopped;
      if (keep) {
        next = pop_waiting_locked();
        if (next) {
          next->conn = shared_from_this();
        } else {
          st_->pools[pool_key_].idle.push_back(shared_from_this());
          idle_ = true;
          ++st_->idle_total;
        }
      }
    }
    if (!keep) {
      discard();
    } else if (next) {
      post_reuse(std::move(next));
    } else {
      arm(st_->opts.idle_timeout, [](connection& c) { c.on_idle_timeout(); });
    }
  }

  void on_idle_timeout() {
    std::shared_ptr<exchange> next;
    std::shared_ptr<connection> successor;
    {
      // Checked and left in one critical section: a request taking us from the idle list at the
      // same time must see either a pooled connection or none at all.
      std::lock_guard lk(st_->mtx);
      if (!idle_)
        return; // taken by a request in the meantime; its reuse() is queued on our strand
      successor = drop_locked(next);
    }
    close();
    if (successor)
      successor->post_start(std::move(next));
  }

  /// Closes and leaves the pool; a freed slot goes to the oldest waiting exchange. Idempotent.
  void discard() {
    close();
    current_.reset();
    if (dropped_)
      return;
    std::shared_ptr<exchange> next;
    std::shared_ptr<connection> successor;
    {
      std::lock_guard lk(st_->mtx);
      successor = drop_locked(next);
    }
    if (successor)
      successor->post_start(std::move(next));
  }

  /// Leaves the pool. If a live exchange waits, a new connection inherits this one's slot and is
  /// returned with the exchange in `next` (the caller starts it outside the lock).
  std::shared_ptr<connection> drop_locked(std::shared_ptr<exchange>& next) {
    dropped_ = true;
    st_->connections.erase(this);
    if (!st_->stopped)
      next = pop_waiting_locked();
    if (!next) {
      leave_pool_locked();
      return nullptr;
    }
    remove_from_idle_locked();
    auto successor = std::make_shared<connection>(st_, next->url);
    st_->connections.emplace(successor.get(), successor);
    next->conn = successor;
    return successor;
  }

  /// The oldest waiting exchange that has not completed yet (or null).
  std::shared_ptr<exchange> pop_waiting_locked() {
    auto it = st_->pools.find(pool_key_);
    if (it == st_->pools.end())
      return nullptr;
    auto& waiting = it->second.waiting;
    while (!waiting.empty()) {
      auto w = std::move(waiting.front());
      waiting.pop_front();
      w->queued = false;
      if (!w->finished.load())
        return w;
    }
    return nullptr;
  }

  void remove_from_idle_locked() {
    if (!idle_)
      return;
    idle_ = false;
    --st_->idle_total;
    auto it = st_->pools.find(pool_key_);
    if (it == st_->pools.end())
      return;
    auto& idle = it->second.idle;
    auto pos =
        std::find_if(idle.begin(), idle.end(), [this](const auto& c) { return c.get() == this; });
    if (pos != idle.end())
      idle.erase(pos);
  }

  /// Gives up this connection's slot. Caller holds client_state::mtx.
  void leave_pool_locked() {
    remove_from_idle_locked();
    auto it = st_->pools.find(pool_key_);
    if (it == st_->pools.end())
      return;
    auto& hp = it->second;
    --hp.open;
    --st_->open_total;
    if (hp.open == 0 && hp.waiting.empty())
      st_->pools.erase(it);
  }

  // ---- plumbing ---------------------------------------------------------------------------

  /// True when the current exchange completed elsewhere (deadline, stop()) or there is none.
  bool abandoned() const { return !current_ || current_->finished.load(); }

  template <class Fn>
  void arm(std::chrono::milliseconds d, Fn on_expiry) {
    auto gen = ++timer_gen_;
    timer_.expires_after(d);
    timer_.async_wait([self = shared_from_this(), gen, on_expiry](error_code ec) {
      if (!ec && gen == self->timer_gen_)
        on_expiry(*self);
    });
  }

  void disarm() {
    ++timer_gen_;
    timer_.cancel();
  }

  void close() {
    disarm();
    resolver_.cancel();
    error_code ignored;
    socket().shutdown(tcp::socket::shutdown_both, ignored);
    socket().close(ignored);
  }

  tcp::socket& socket() { return tls_ ? tls_->next_layer() : *plain_; }

  template <class Fn>
  void with_stream(Fn&& fn) {
    if (tls_)
      fn(*tls_);
    else
      fn(*plain_);
  }

  std::shared_ptr<client_state> st_; ///< first: outlives the streams that use its TLS context
  const std::string tls_host_;
  const std::string authority_;
  const std::string pool_key_;
  const uint16_t port_;
  strand ex_;
  tcp::resolver resolver_;
  asio::steady_timer timer_; ///< connect timeout while connecting, idle timeout while pooled
  std::optional<tcp::socket> plain_;
  std::optional<ssl::stream<tcp::socket>> tls_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::response_parser<bhttp::string_body>> parser_;
  std::shared_ptr<exchange> current_;
  uint64_t timer_gen_ = 0; ///< stale timer completions compare unequal and are ignored
  bool reused_ = false;    ///< the current exchange runs on a connection that served before
  bool connect_timed_out_ = false;
  bool dropped_ = false; ///< left the pool (strand only)
  bool idle_ = false;    ///< in its pool's idle list (guarded by client_state::mtx)
};

void finish(client_state& st, const std::shared_ptr<exchange>& x, client_result r,
            bool abort_connection) {
  if (x->finished.exchange(true))
    return;
  std::shared_ptr<connection> conn;
  {
    std::lock_guard lk(st.mtx);
    st.live.erase(x.get());
    if (x->queued) {
      x->queued = false;
      if (auto it = st.pools.find(x->url.pool_key); it != st.pools.end()) {
        auto& waiting = it->second.waiting;
        waiting.erase(std::remove(waiting.begin(), waiting.end(), x), waiting.end());
      }
    }
    if (abort_connection)
      conn = x->conn.lock();
  }
  if (conn)
    conn->post_abort(x);
  asio::post(x->ex, [x] { x->deadline.cancel(); });
  if (auto* e = std::get_if<client_error>(&r))
    e->write_started = e->write_started || x->write_started.load();
  auto cb = std::move(x->cb);
  if (!cb)
    return;
  try {
    cb(std::move(r));
  } catch (const std::exception& e) {
    st.log.error("client callback threw", {{"error", e.what()}});
  } catch (...) {
    st.log.error("client callback threw a non-standard exception");
  }
}

/// Hands `x` to an idle connection, a new one, or the back of its pool's queue.
void acquire(const std::shared_ptr<client_state>& st, const std::shared_ptr<exchange>& x) {
  std::shared_ptr<connection> conn;
  bool fresh = false;
  {
    std::lock_guard lk(st->mtx);
    if (x->finished.load())
      return;
    if (!st->stopped) {
      auto& hp = st->pools[x->url.pool_key];
      if (!hp.idle.empty()) {
        conn = std::move(hp.idle.back());
        hp.idle.pop_back();
        conn->idle_flag() = false;
        --st->idle_total;
      } else if (hp.open < st->opts.max_connections_per_host) {
        conn = std::make_shared<connection>(st, x->url);
        st->connections.emplace(conn.get(), conn);
        ++hp.open;
        ++st->open_total;
        fresh = true;
      } else {
        hp.waiting.push_back(x);
        x->queued = true;
        return;
      }
      x->conn = conn;
    }
  }
  if (!conn)
    finish(*st, x, stopped_error(), false);
  else if (fresh)
    conn->post_start(x);
  else
    conn->post_reuse(x);
}

} // namespace

// ---- client ---------------------------------------------------------------------------------

struct client::impl {
  explicit impl(client_options o)
      : ioc(std::max(1, o.io_threads))
      , st(std::make_shared<client_state>()) {
    o.io_threads = std::max(1, o.io_threads);
    o.max_connections_per_host = std::max<size_t>(1, o.max_connections_per_host);
    st->ioc = &ioc;
    SSL_CTX_set_min_proto_version(st->tls.native_handle(), TLS1_2_VERSION);
    st->tls.set_default_verify_paths();
    if (!o.ca_file.empty()) {
      error_code ec;
      st->tls.load_verify_file(o.ca_file, ec);
      if (ec)
        throw std::runtime_error("cannot load the CA bundle '" + o.ca_file + "': " + ec.message());
    }
    st->tls.set_verify_mode(o.verify_peer ? ssl::verify_peer : ssl::verify_none);
    st->opts = std::move(o);
  }

  bool on_io_thread() const {
    auto me = std::this_thread::get_id();
    return std::any_of(threads.begin(), threads.end(),
                       [&](const std::thread& t) { return t.get_id() == me; });
  }

  void run_loop() { run_io_loop(ioc, st->log, "exception escaped an HTTP client I/O handler"); }

  // Declared first so it is destroyed last: sockets and timers of connections refer to it.
  asio::io_context ioc;
  std::shared_ptr<client_state> st;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  std::vector<std::thread> threads;
  bool started = false;
};

client::client(client_options o)
    : impl_(std::make_unique<impl>(std::move(o))) {}

client::~client() {
  stop();
  // Pooled connections and queued exchanges hold sockets and timers of the io_context and point
  // back at the state: release them while the io_context still exists.
  std::unordered_map<std::string, host_pool> pools;
  std::unordered_map<const exchange*, std::shared_ptr<exchange>> live;
  {
    std::lock_guard lk(impl_->st->mtx);
    pools.swap(impl_->st->pools);
    live.swap(impl_->st->live);
    impl_->st->connections.clear();
  }
}

void client::start() {
  auto& m = *impl_;
  {
    std::lock_guard lk(m.st->mtx);
    if (m.started || m.st->stopped)
      return;
    m.started = true;
  }
  m.work.emplace(m.ioc.get_executor());
  for (int i = 0; i < m.st->opts.io_threads; ++i)
    m.threads.emplace_back([&m] { m.run_loop(); });
}

void client::stop() {
  auto& m = *impl_;
  std::vector<std::shared_ptr<exchange>> pending;
  std::vector<std::shared_ptr<connection>> conns;
  {
    std::lock_guard lk(m.st->mtx);
    if (!m.st->stopped) {
      m.st->stopped = true;
      for (auto& [_, x] : m.st->live)
        pending.push_back(x);
      for (auto& [_, weak] : m.st->connections)
        if (auto c = weak.lock())
          conns.push_back(std::move(c));
    }
  }
  auto fail_all = [st = m.st, pending = std::move(pending), conns = std::move(conns)] {
    for (auto& x : pending)
      finish(*st, x, stopped_error(), true);
    for (auto& c : conns)
      c->post_close();
  };
  bool io_thread = m.on_io_thread();
  if (m.threads.empty() || io_thread || m.ioc.stopped()) {
    fail_all(); // no I/O thread can run them (or we are on one): callbacks run here
  } else {
    std::promise<void> done;
    auto fut = done.get_future();
    asio::post(m.ioc, [&] {
      fail_all();
      done.set_value();
    });
    fut.wait();
  }
  if (m.threads.empty())
    return;
  m.work.reset();
  m.ioc.stop();
  if (io_thread)
    return; // cannot join ourselves; the destructor joins
  for (auto& t : m.threads)
    t.join();
  m.threads.clear();
}

void client::send(client_request req, client_callback cb) {
  auto& m = *impl_;
  std::string why;
  auto url = parse_url(req.url, why);
  std::optional<bhttp::request<bhttp::string_body>> msg;
  if (url)
    msg = build_request(req, *url, why);
  auto timeout = req.timeout.value_or(m.st->opts.default_timeout);
  auto x = std::make_shared<exchange>(m.ioc, url ? std::move(*url) : target_url{},
                                      msg ? std::move(*msg) : bhttp::request<bhttp::string_body>{},
                                      std::move(cb), timeout);
  // Armed before anyone else can see `x`: the timer is not touched concurrently.
  x->deadline.expires_after(timeout);
  x->deadline.async_wait([st = m.st, x](error_code ec) {
    if (ec)
      return;
    bool sent = x->write_started.load();
    finish(
        *st, x,
        make_error(kind::timeout, "request to " + x->url.authority + " timed out after " +
                                      std::to_string(x->timeout.count()) + " ms" +
                                      (sent ? " waiting for the response" : " before it was sent")),
        true);
  });
  bool stopped = false;
  {
    std::lock_guard lk(m.st->mtx);
    stopped = m.st->stopped;
    if (!stopped)
      m.st->live.emplace(x.get(), x);
  }
  if (stopped) {
    x->deadline.cancel();
    finish(*m.st, x, stopped_error(), false);
    return;
  }
  if (!msg) {
    // Through the io_context, so the callback runs on an I/O thread like every other one.
    asio::post(x->ex, [st = m.st, x, why = std::move(why)]() mutable {
      finish(*st, x, make_error(kind::invalid_url, std::move(why)), false);
    });
    return;
  }
  acquire(m.st, x);
}

client::stats client::current_stats() const {
  std::lock_guard lk(impl_->st->mtx);
  return {impl_->st->open_total, impl_->st->idle_total, impl_->st->live.size()};
}

} // namespace parley::http
