// The outbound client over loopback (port 0): our own http::server as the well-behaved peer, and
// a scripted Asio server (plain or TLS with a certificate made here) for peers that misbehave.
#include "http/client.hpp"

#include <utility> // before Asio: g++ 12 in C++20 mode needs it (see PLATFORM.md)

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/write.hpp>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "http/server.hpp"

using namespace parley::http;
using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;
using json = nlohmann::json;
using kind = client_error::kind;

namespace {

// ---- waiting for callbacks ------------------------------------------------------------------

/// Sends and waits for the callback. A callback that never comes fails the test (as an error
/// result) instead of hanging it; the shared promise stays valid for a late one.
client_result fetch(client& c, client_request req) {
  auto done = std::make_shared<std::promise<client_result>>();
  auto fut = done->get_future();
  c.send(std::move(req), [done](client_result r) { done->set_value(std::move(r)); });
  if (fut.wait_for(20s) != std::future_status::ready) {
    client_error e;
    e.message = "test: no callback within 20 s";
    return e;
  }
  return fut.get();
}

client_request get(std::string url) {
  client_request r;
  r.method = "GET";
  r.url = std::move(url);
  return r;
}

std::string describe(const client_result& r) {
  if (auto* e = std::get_if<client_error>(&r))
    return "error " + std::to_string(static_cast<int>(e->what)) + ": " + e->message;
  return "response " + std::to_string(std::get<client_response>(r).status);
}

const client_response& response_of(const client_result& r) {
  static const client_response none;
  auto* res = std::get_if<client_response>(&r);
  return res ? *res : none;
}

const client_error& error_of(const client_result& r) {
  static const client_error none{kind::io, "test: expected an error, got a response", false};
  auto* e = std::get_if<client_error>(&r);
  return e ? *e : none;
}

/// Checks `r` once (the argument may be a call such as fetch(...)).
::testing::AssertionResult is_response(const client_result& r, int status) {
  if (!std::holds_alternative<client_response>(r))
    return ::testing::AssertionFailure() << "expected status " << status << ", got " << describe(r);
  if (response_of(r).status != status)
    return ::testing::AssertionFailure() << "expected status " << status << ", got " << describe(r);
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult is_error(const client_result& r, kind k) {
  if (!std::holds_alternative<client_error>(r) || error_of(r).what != k)
    return ::testing::AssertionFailure()
           << "expected error kind " << static_cast<int>(k) << ", got " << describe(r);
  return ::testing::AssertionSuccess();
}

#define EXPECT_RESPONSE(r, code) EXPECT_TRUE(is_response((r), (code)))
#define EXPECT_ERROR(r, k) EXPECT_TRUE(is_error((r), (k)))

// ---- a scripted peer ------------------------------------------------------------------------

/// What the scripted server does with request number `request_no` of connection `connection_no`.
enum class act { answer, answer_chunked, answer_then_close, close, hang };
using script = std::function<act(int connection_no, int request_no)>;

/// One Asio thread; requests must have no body (the tests send GET). TLS when given a context.
class scripted_server {
public:
  explicit scripted_server(script s, ssl::context* tls = nullptr)
      : acceptor_(ioc_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0))
      , script_(std::move(s))
      , tls_(tls) {
    accept();
    thread_ = std::thread([this] { ioc_.run(); });
  }
  ~scripted_server() {
    ioc_.stop();
    thread_.join();
  }

  uint16_t port() const { return acceptor_.local_endpoint().port(); }
  int requests() const { return requests_.load(); }
  int connections() const { return connections_.load(); }
  std::string last_sni() const {
    std::lock_guard lk(mtx_);
    return sni_;
  }

private:
  template <class Stream>
  class session : public std::enable_shared_from_this<session<Stream>> {
  public:
    template <class... Args>
    session(scripted_server& srv, int no, Args&&... args)
        : stream_(std::forward<Args>(args)...)
        , srv_(srv)
        , no_(no) {}

    void start() {
      if constexpr (std::is_same_v<Stream, tcp::socket>) {
        read();
      } else {
        stream_.async_handshake(ssl::stream_base::server,
                                [self = this->shared_from_this()](auto ec) {
                                  if (ec)
                                    return;
                                  if (auto* name = SSL_get_servername(self->stream_.native_handle(),
                                                                      TLSEXT_NAMETYPE_host_name)) {
                                    std::lock_guard lk(self->srv_.mtx_);
                                    self->srv_.sni_ = name;
                                  }
                                  self->read();
                                });
      }
    }

  private:
    void read() {
      asio::async_read_until(stream_, buf_, "\r\n\r\n",
                             [self = this->shared_from_this()](auto ec, size_t n) {
                               if (ec)
                                 return;
                               self->buf_.consume(n);
                               self->srv_.requests_.fetch_add(1);
                               self->act_on(self->srv_.script_(self->no_, self->request_no_++));
                             });
    }

    void act_on(act a) {
      switch (a) {
      case act::answer:
        return write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok",
                     false);
      case act::answer_chunked:
        return write("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
                     false);
      case act::answer_then_close:
        return write("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", true);
      case act::close:
        return close();
      case act::hang:
        return read(); // never answers; the next read keeps the connection open
      }
    }

    void write(std::string text, bool close_after) {
      auto data = std::make_shared<std::string>(std::move(text));
      asio::async_write(stream_, asio::buffer(*data),
                        [self = this->shared_from_this(), data, close_after](auto ec, size_t) {
                          if (ec || close_after)
                            self->close();
                          else
                            self->read();
                        });
    }

    void close() {
      boost::system::error_code ignored;
      auto& sock = lowest();
      sock.shutdown(tcp::socket::shutdown_both, ignored);
      sock.close(ignored);
    }

    tcp::socket& lowest() {
      if constexpr (std::is_same_v<Stream, tcp::socket>)
        return stream_;
      else
        return stream_.next_layer();
    }

    Stream stream_;
    scripted_server& srv_;
    int no_;
    int request_no_ = 0;
    asio::streambuf buf_;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
      if (ec)
        return;
      int no = connections_.fetch_add(1);
      if (tls_)
        std::make_shared<session<ssl::stream<tcp::socket>>>(*this, no, std::move(sock), *tls_)
            ->start();
      else
        std::make_shared<session<tcp::socket>>(*this, no, std::move(sock))->start();
      accept();
    });
  }

  asio::io_context ioc_;
  tcp::acceptor acceptor_;
  script script_;
  ssl::context* tls_;
  std::thread thread_;
  std::atomic<int> requests_{0};
  std::atomic<int> connections_{0};
  mutable std::mutex mtx_;
  std::string sni_;
};

// ---- a self-signed certificate --------------------------------------------------------------

struct test_cert {
  std::string cert_pem;
  std::string key_pem;
};

std::string bio_text(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return std::string(data, static_cast<size_t>(n));
}

/// A P-256 key and a self-signed certificate whose subjectAltName is `san`
/// (e.g. "DNS:localhost,IP:127.0.0.1").
test_cert make_cert(const std::string& common_name, const std::string& san) {
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"), &EVP_PKEY_free);
  std::unique_ptr<X509, decltype(&X509_free)> x(X509_new(), &X509_free);
  if (!key || !x)
    throw std::runtime_error("cannot create a test key or certificate");
  X509_set_version(x.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(x.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(x.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x.get()), 24 * 3600);
  X509_set_pubkey(x.get(), key.get());
  X509_NAME* name = X509_get_subject_name(x.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(x.get(), name);
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, x.get(), x.get(), nullptr, nullptr, 0);
  for (auto [nid, value] : {std::pair{NID_subject_alt_name, san.c_str()},
                            std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                            std::pair{NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
    if (!ext)
      throw std::runtime_error("cannot build a certificate extension");
    X509_add_ext(x.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(x.get(), key.get(), EVP_sha256()) == 0)
    throw std::runtime_error("cannot sign the test certificate");
  test_cert out;
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(BIO_new(BIO_s_mem()), &BIO_free);
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(BIO_new(BIO_s_mem()), &BIO_free);
  PEM_write_bio_X509(cert_bio.get(), x.get());
  PEM_write_bio_PrivateKey(key_bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  out.cert_pem = bio_text(cert_bio.get());
  out.key_pem = bio_text(key_bio.get());
  return out;
}

/// A PEM file that removes itself.
class temp_pem {
public:
  explicit temp_pem(const std::string& text) {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            ("parley_client_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
             ".pem");
    std::ofstream(path_) << text;
  }
  ~temp_pem() {
    std::error_code ignored;
    std::filesystem::remove(path_, ignored);
  }
  std::string path() const { return path_.string(); }

private:
  std::filesystem::path path_;
};

/// A TLS server context presenting `cert`.
std::unique_ptr<ssl::context> server_tls(const test_cert& cert) {
  auto ctx = std::make_unique<ssl::context>(ssl::context::tls_server);
  ctx->use_certificate_chain(asio::buffer(cert.cert_pem));
  ctx->use_private_key(asio::buffer(cert.key_pem), ssl::context::pem);
  return ctx;
}

client_options quick_options() {
  client_options o;
  o.default_timeout = 10s;
  return o;
}

// ---- against our own server -----------------------------------------------------------------

class client_test : public ::testing::Test {
protected:
  void SetUp() override {
    auto echo = [](request&& req, responder done) {
      done(response::json(200, {{"method", req.method},
                                {"target", req.target},
                                {"body", req.body},
                                {"host", req.header("host")},
                                {"user_agent", req.header("user-agent")},
                                {"connection", req.header("connection")},
                                {"content_length", req.header("content-length")},
                                {"custom", req.header("x-custom")}}));
    };
    routes_->add("GET", "/echo", echo);
    routes_->add("POST", "/echo", echo);
    routes_->add("GET", "/big", [](request&&, responder done) {
      response r;
      r.content_type = "text/plain";
      r.body = std::string(1000, 'x');
      done(std::move(r));
    });
    routes_->add("GET", "/park", [this](request&&, responder done) {
      std::lock_guard lk(mtx_);
      parked_.push_back(std::move(done));
      cv_.notify_all();
    });
    routes_->add("GET", "/connections", [this](request&&, responder done) {
      auto now = server_->connections();
      auto seen = max_connections_.load();
      while (now > seen && !max_connections_.compare_exchange_weak(seen, now)) {
      }
      done(response::json(200, {{"ok", true}}));
    });
    server_options so;
    so.io_threads = 2;
    server_ = std::make_unique<server>(so, routes_);
    server_->start();
  }

  void TearDown() override {
    answer_parked();
    server_->stop();
  }

  std::string url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(path);
  }

  /// Waits until `n` requests are parked (fails after 10 s).
  bool wait_parked(size_t n) {
    std::unique_lock lk(mtx_);
    return cv_.wait_for(lk, 10s, [&] { return parked_.size() >= n; });
  }

  void answer_parked() {
    std::vector<responder> parked;
    {
      std::lock_guard lk(mtx_);
      parked.swap(parked_);
    }
    for (auto& r : parked)
      r(response::json(200, {{"parked", true}}));
  }

  std::shared_ptr<router> routes_ = std::make_shared<router>();
  std::unique_ptr<server> server_;
  std::atomic<size_t> max_connections_{0};
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<responder> parked_;
};

TEST_F(client_test, get_and_post_carry_the_expected_headers) {
  client c(quick_options());
  c.start();

  auto r = fetch(c, get(url("/echo?x=1#fragment")));
  EXPECT_RESPONSE(r, 200);
  auto body = json::parse(response_of(r).body);
  EXPECT_EQ(body["method"], "GET");
  EXPECT_EQ(body["target"], "/echo?x=1");
  EXPECT_EQ(body["host"], "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_EQ(body["user_agent"].get<std::string>().rfind("parley/", 0), 0u);
  EXPECT_EQ(body["connection"], "keep-alive");
  EXPECT_EQ(response_of(r).header("content-type"), "application/json");

  client_request post;
  post.url = url("/echo");
  post.body = R"({"hello":"world"})";
  post.headers = {{"X-Custom", "yes"}, {"Host", "evil.example"}, {"Content-Length", "1"}};
  r = fetch(c, post);
  EXPECT_RESPONSE(r, 200);
  body = json::parse(response_of(r).body);
  EXPECT_EQ(body["method"], "POST");
  EXPECT_EQ(body["body"], post.body);
  EXPECT_EQ(body["custom"], "yes");
  EXPECT_EQ(body["host"], "127.0.0.1:" + std::to_string(server_->port()));
  EXPECT_EQ(body["content_length"], std::to_string(post.body.size()));
}

TEST_F(client_test, sequential_requests_reuse_one_keep_alive_connection) {
  client c(quick_options());
  c.start();
  for (int i = 0; i < 10; ++i) {
    auto r = fetch(c, get(url("/echo")));
    EXPECT_RESPONSE(r, 200);
  }
  EXPECT_EQ(server_->connections(), 1u);
  auto s = c.current_stats();
  EXPECT_EQ(s.open_connections, 1u);
  EXPECT_EQ(s.idle_connections, 1u);
  EXPECT_EQ(s.in_flight, 0u);
}

TEST_F(client_test, many_parallel_requests_share_a_bounded_pool) {
  auto o = quick_options();
  o.max_connections_per_host = 8;
  o.io_threads = 2;
  constexpr int total = 200;
  std::mutex mtx;
  std::vector<client_result> results;
  std::atomic<size_t> max_open{0};
  std::promise<void> all_done;
  client c(o); // declared last: destroyed (and joined) before what its callbacks touch
  c.start();
  for (int i = 0; i < total; ++i) {
    c.send(get(url("/connections")), [&](client_result r) {
      auto open = c.current_stats().open_connections;
      auto seen = max_open.load();
      while (open > seen && !max_open.compare_exchange_weak(seen, open)) {
      }
      bool last = false;
      {
        std::lock_guard lk(mtx);
        results.push_back(std::move(r));
        last = results.size() == total;
      }
      if (last)
        all_done.set_value();
    });
  }
  ASSERT_EQ(all_done.get_future().wait_for(30s), std::future_status::ready);
  std::lock_guard lk(mtx);
  for (const auto& r : results)
    EXPECT_RESPONSE(r, 200);
  EXPECT_LE(max_open.load(), 8u);
  EXPECT_LE(max_connections_.load(), 8u);
  EXPECT_LE(c.current_stats().open_connections, 8u);
  EXPECT_EQ(c.current_stats().in_flight, 0u);
}

TEST_F(client_test, a_silent_server_times_out_after_the_write) {
  client c(quick_options());
  c.start();
  auto req = get(url("/park"));
  req.timeout = 200ms;
  auto r = fetch(c, req);
  EXPECT_ERROR(r, kind::timeout);
  EXPECT_TRUE(error_of(r).may_have_reached_server());
  EXPECT_NE(error_of(r).message.find("timed out"), std::string::npos) << error_of(r).message;
  EXPECT_EQ(c.current_stats().in_flight, 0u);
}

TEST_F(client_test, the_deadline_covers_waiting_for_a_connection) {
  auto o = quick_options();
  o.max_connections_per_host = 1;
  client c(o);
  c.start();
  auto first = std::make_shared<std::promise<client_result>>();
  c.send(get(url("/park")), [first](client_result r) { first->set_value(std::move(r)); });
  ASSERT_TRUE(wait_parked(1));

  auto queued = get(url("/echo"));
  queued.timeout = 100ms;
  auto r = fetch(c, queued);
  EXPECT_ERROR(r, kind::timeout);
  EXPECT_FALSE(error_of(r).may_have_reached_server());

  answer_parked();
  auto f = first->get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  EXPECT_RESPONSE(f.get(), 200);
  EXPECT_RESPONSE(fetch(c, get(url("/echo"))), 200);
  EXPECT_EQ(server_->connections(), 1u);
}

TEST_F(client_test, oversized_bodies_fail_with_too_large) {
  auto o = quick_options();
  o.max_response_body = 500; // /echo answers fit, /big (1000 bytes) does not
  client c(o);
  c.start();
  auto r = fetch(c, get(url("/big")));
  EXPECT_ERROR(r, kind::too_large);
  EXPECT_TRUE(error_of(r).may_have_reached_server());
  EXPECT_EQ(response_of(r).body.size(), 0u);
  // The broken connection is not reused; the next request works.
  EXPECT_RESPONSE(fetch(c, get(url("/echo"))), 200);
}

TEST_F(client_test, malformed_input_fails_through_the_callback) {
  client c(quick_options());
  c.start();
  for (const char* bad :
       {"", "not a url", "ftp://127.0.0.1/", "http://", "http:///path", "http://127.0.0.1:0/",
        "http://127.0.0.1:99999/", "http://127.0.0.1:x/", "http://user:pw@127.0.0.1/",
        "http://a b/", "http://[::1/", "http://host/\r\nX: y"}) {
    auto r = fetch(c, get(bad));
    EXPECT_ERROR(r, kind::invalid_url);
    EXPECT_FALSE(error_of(r).may_have_reached_server());
    EXPECT_FALSE(error_of(r).message.empty()) << bad;
  }
  auto bad_header = get(url("/echo"));
  bad_header.headers = {{"X-Evil", "a\r\nInjected: 1"}};
  EXPECT_ERROR(fetch(c, bad_header), kind::invalid_url);
  auto bad_method = get(url("/echo"));
  bad_method.method = "GE T";
  EXPECT_ERROR(fetch(c, bad_method), kind::invalid_url);
  EXPECT_EQ(c.current_stats().in_flight, 0u);
}

TEST_F(client_test, stop_completes_pending_requests) {
  client c(quick_options());
  c.start();
  auto pending = std::make_shared<std::promise<client_result>>();
  c.send(get(url("/park")), [pending](client_result r) { pending->set_value(std::move(r)); });
  ASSERT_TRUE(wait_parked(1));
  c.stop();
  auto f = pending->get_future();
  ASSERT_EQ(f.wait_for(0s), std::future_status::ready);
  auto r = f.get();
  EXPECT_ERROR(r, kind::io);
  EXPECT_EQ(error_of(r).message, "client stopped");

  auto after = fetch(c, get(url("/echo")));
  EXPECT_ERROR(after, kind::io);
}

TEST_F(client_test, requests_sent_before_start_run_after_it) {
  client c(quick_options());
  auto early = std::make_shared<std::promise<client_result>>();
  c.send(get(url("/echo")), [early](client_result r) { early->set_value(std::move(r)); });
  c.start();
  auto f = early->get_future();
  ASSERT_EQ(f.wait_for(20s), std::future_status::ready);
  EXPECT_RESPONSE(f.get(), 200);
}

TEST(client, connection_refused_is_a_connect_error) {
  uint16_t port = 0;
  {
    asio::io_context ioc;
    tcp::acceptor a(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    port = a.local_endpoint().port();
  }
  client c(quick_options());
  c.start();
  auto r = fetch(c, get("http://127.0.0.1:" + std::to_string(port) + "/"));
  EXPECT_ERROR(r, kind::connect);
  EXPECT_FALSE(error_of(r).may_have_reached_server());
  EXPECT_NE(error_of(r).message.find("127.0.0.1:" + std::to_string(port)), std::string::npos)
      << error_of(r).message;
  EXPECT_EQ(c.current_stats().open_connections, 0u);
}

// ---- misbehaving peers ----------------------------------------------------------------------

TEST(client, a_peer_closing_without_an_answer_is_an_io_error_that_may_have_arrived) {
  scripted_server srv([](int, int) { return act::close; });
  client c(quick_options());
  c.start();
  auto r = fetch(c, get("http://127.0.0.1:" + std::to_string(srv.port()) + "/"));
  EXPECT_ERROR(r, kind::io);
  EXPECT_TRUE(error_of(r).may_have_reached_server());
  EXPECT_EQ(srv.requests(), 1); // a fresh connection is never retried
}

TEST(client, a_reused_connection_closed_before_the_answer_is_retried_once) {
  // The second request on a connection is dropped: the client's retry on a new connection is
  // answered, and the server saw the request twice (the documented duplicate risk).
  scripted_server srv(
      [](int, int request_no) { return request_no == 0 ? act::answer : act::close; });
  client c(quick_options());
  c.start();
  auto u = "http://127.0.0.1:" + std::to_string(srv.port()) + "/";
  EXPECT_RESPONSE(fetch(c, get(u)), 200);
  EXPECT_RESPONSE(fetch(c, get(u)), 200);
  EXPECT_EQ(srv.requests(), 3);
  EXPECT_EQ(srv.connections(), 2);
}

TEST(client, the_retry_happens_only_once) {
  scripted_server srv([](int connection_no, int request_no) {
    return connection_no == 0 && request_no == 0 ? act::answer : act::close;
  });
  client c(quick_options());
  c.start();
  auto u = "http://127.0.0.1:" + std::to_string(srv.port()) + "/";
  EXPECT_RESPONSE(fetch(c, get(u)), 200);
  auto r = fetch(c, get(u));
  EXPECT_ERROR(r, kind::io);
  EXPECT_TRUE(error_of(r).may_have_reached_server());
  EXPECT_EQ(srv.requests(), 3);
}

TEST(client, connections_the_server_closed_while_idle_are_replaced) {
  scripted_server srv([](int, int) { return act::answer_then_close; });
  client c(quick_options());
  c.start();
  auto u = "http://127.0.0.1:" + std::to_string(srv.port()) + "/";
  for (int i = 0; i < 3; ++i)
    EXPECT_RESPONSE(fetch(c, get(u)), 200);
  EXPECT_EQ(srv.requests(), 3); // the server application never saw a request twice
  EXPECT_EQ(srv.connections(), 3);
}

TEST(client, chunked_responses_are_reassembled) {
  scripted_server srv([](int, int) { return act::answer_chunked; });
  client c(quick_options());
  c.start();
  auto r = fetch(c, get("http://127.0.0.1:" + std::to_string(srv.port()) + "/"));
  EXPECT_RESPONSE(r, 200);
  EXPECT_EQ(response_of(r).body, "hello world");
}

TEST(client, oversized_chunked_bodies_fail_with_too_large) {
  scripted_server srv([](int, int) { return act::answer_chunked; });
  auto o = quick_options();
  o.max_response_body = 8;
  client c(o);
  c.start();
  auto r = fetch(c, get("http://127.0.0.1:" + std::to_string(srv.port()) + "/"));
  EXPECT_ERROR(r, kind::too_large);
}

// ---- TLS ------------------------------------------------------------------------------------

class client_tls_test : public ::testing::Test {
protected:
  static void SetUpTestSuite() {
    localhost_ = new test_cert(make_cert("localhost", "DNS:localhost,IP:127.0.0.1"));
    other_ = new test_cert(make_cert("other.test", "DNS:other.test"));
  }
  static void TearDownTestSuite() {
    delete localhost_;
    delete other_;
  }
  static inline test_cert* localhost_ = nullptr;
  static inline test_cert* other_ = nullptr;
};

TEST_F(client_tls_test, a_trusted_certificate_for_the_host_succeeds_with_sni) {
  auto tls = server_tls(*localhost_);
  scripted_server srv([](int, int) { return act::answer; }, tls.get());
  temp_pem ca(localhost_->cert_pem);
  auto o = quick_options();
  o.ca_file = ca.path();
  client c(o);
  c.start();
  auto port = std::to_string(srv.port());
  for (int i = 0; i < 3; ++i) {
    auto r = fetch(c, get("https://localhost:" + port + "/"));
    EXPECT_RESPONSE(r, 200);
    EXPECT_EQ(response_of(r).body, "ok");
  }
  EXPECT_EQ(srv.connections(), 1); // keep-alive over TLS
  EXPECT_EQ(srv.last_sni(), "localhost");
  // The IP SAN is checked for IP literals (which carry no SNI).
  EXPECT_RESPONSE(fetch(c, get("https://127.0.0.1:" + port + "/")), 200);
}

TEST_F(client_tls_test, an_untrusted_certificate_is_a_tls_error) {
  auto tls = server_tls(*localhost_);
  scripted_server srv([](int, int) { return act::answer; }, tls.get());
  client c(quick_options());
  c.start();
  auto r = fetch(c, get("https://localhost:" + std::to_string(srv.port()) + "/"));
  EXPECT_ERROR(r, kind::tls);
  EXPECT_FALSE(error_of(r).may_have_reached_server());
  EXPECT_EQ(srv.requests(), 0);
}

TEST_F(client_tls_test, a_host_name_mismatch_is_a_tls_error) {
  auto tls = server_tls(*other_);
  scripted_server srv([](int, int) { return act::answer; }, tls.get());
  temp_pem ca(other_->cert_pem);
  auto o = quick_options();
  o.ca_file = ca.path();
  client c(o);
  c.start();
  auto port = std::to_string(srv.port());
  for (const auto& host : {"localhost", "127.0.0.1"}) {
    auto r = fetch(c, get("https://" + std::string(host) + ":" + port + "/"));
    EXPECT_ERROR(r, kind::tls);
    EXPECT_NE(error_of(r).message.find("mismatch"), std::string::npos) << error_of(r).message;
  }
  EXPECT_EQ(srv.requests(), 0);
}

TEST_F(client_tls_test, verification_can_be_turned_off_for_tests) {
  auto tls = server_tls(*other_);
  scripted_server srv([](int, int) { return act::answer; }, tls.get());
  auto o = quick_options();
  o.verify_peer = false;
  client c(o);
  c.start();
  EXPECT_RESPONSE(fetch(c, get("https://localhost:" + std::to_string(srv.port()) + "/")), 200);
}

TEST(client, an_unreadable_ca_file_is_refused_at_construction) {
  client_options o;
  o.ca_file = "/nonexistent/ca.pem";
  EXPECT_THROW(client{o}, std::runtime_error);
}

} // namespace
