// The server over real loopback sockets (port 0), driven by a raw blocking client.
#include "http/server.hpp"

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "http/metrics_observer.hpp"
#include "runtime/metrics.hpp"
#include "tests/http/raw_client.hpp"

using namespace parley::http;
using namespace std::chrono_literals;
using parley::http::test::raw_client;
using parley::http::test::reply;
namespace t = parley::http::test;
using json = nlohmann::json;

namespace {

/// Responders parked by handlers that answer later; the test decides when and from where.
class parked {
public:
  void push(responder r) {
    std::lock_guard lk(mtx_);
    items_.push_back(std::move(r));
    cv_.notify_all();
  }
  /// Waits for the next parked responder (fails the test after 5 s).
  std::optional<responder> pop() {
    std::unique_lock lk(mtx_);
    if (!cv_.wait_for(lk, 5s, [&] { return !items_.empty(); }))
      return std::nullopt;
    auto r = std::move(items_.front());
    items_.pop_front();
    return r;
  }

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<responder> items_;
};

/// Records on_complete calls; tests wait for them because the server reports after the write.
class recording_observer : public request_observer {
public:
  struct entry {
    std::string method, path, route, request_id;
    int status;
    std::chrono::nanoseconds latency;
  };
  explicit recording_observer(request_observer* next = nullptr)
      : next_(next) {}
  void on_complete(const request& req, int status, std::chrono::nanoseconds latency) override {
    if (next_)
      next_->on_complete(req, status, latency);
    std::lock_guard lk(mtx_);
    entries_.push_back({req.method, req.path, req.route, req.request_id, status, latency});
    cv_.notify_all();
  }
  std::vector<entry> wait_for(size_t n) {
    std::unique_lock lk(mtx_);
    cv_.wait_for(lk, 5s, [&] { return entries_.size() >= n; });
    return entries_;
  }

private:
  request_observer* next_;
  std::mutex mtx_;
  std::condition_variable cv_;
  std::vector<entry> entries_;
};

json body_of(const reply& r) {
  return json::parse(r.body);
}

class Server : public ::testing::Test {
protected:
  Server() {
    routes_->add("GET", "/echo/{id}", [](request&& req, responder done) {
      json j{{"method", req.method},
             {"path", req.path},
             {"route", req.route},
             {"params", req.params},
             {"query", req.query},
             {"request_id", req.request_id},
             {"x_test", std::string(req.header("x-test"))},
             {"remote_ip", req.remote_ip}};
      done(response::json(200, j));
    });
    routes_->add("DELETE", "/echo/{id}", [](request&&, responder done) {
      response r;
      r.status = 204;
      r.body.clear();
      done(std::move(r));
    });
    routes_->add("POST", "/body", [](request&& req, responder done) {
      response r;
      r.content_type = "application/octet-stream";
      r.body = std::move(req.body);
      r.headers.emplace_back("X-Custom", "yes");
      r.headers.emplace_back("X-Evil", "a\r\nSet-Cookie: x=1");
      done(std::move(r));
    });
    routes_->add("GET", "/park",
                 [this](request&&, responder done) { parked_.push(std::move(done)); });
    routes_->add("GET", "/throw", [](request&&, responder) { throw std::runtime_error("boom"); });
    routes_->add("GET", "/drop", [](request&&, responder) {});
  }

  void start(server_options o = {}, std::shared_ptr<request_observer> obs = nullptr) {
    srv_ = std::make_unique<server>(o, routes_, std::move(obs));
    srv_->start();
  }

  ~Server() override {
    if (srv_)
      srv_->stop();
  }

  uint16_t port() const { return srv_->port(); }

  std::shared_ptr<router> routes_ = std::make_shared<router>();
  parked parked_;
  std::unique_ptr<server> srv_;
};

} // namespace

TEST_F(Server, KeepAliveServesManyRequestsOnOneConnection) {
  start();
  raw_client c(port());
  ASSERT_TRUE(c.connected());
  for (int i = 0; i < 200; ++i) {
    auto r = c.roundtrip(t::get("/echo/" + std::to_string(i)));
    ASSERT_TRUE(r) << "request " << i;
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(body_of(*r)["params"]["id"], std::to_string(i));
    EXPECT_NE(r->header("connection"), "close");
  }
  EXPECT_EQ(srv_->connections(), 1u);
}

TEST_F(Server, ConcurrentClientsOnSeveralIoThreads) {
  server_options o;
  o.io_threads = 2;
  start(o);
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int k = 0; k < 4; ++k)
    clients.emplace_back([&, k] {
      raw_client c(port());
      for (int i = 0; i < 100; ++i) {
        auto id = std::to_string(k) + "-" + std::to_string(i);
        auto r = c.roundtrip(t::get("/echo/" + id));
        if (r && r->status == 200 && body_of(*r)["params"]["id"] == id)
          ok.fetch_add(1);
      }
    });
  for (auto& th : clients)
    th.join();
  EXPECT_EQ(ok.load(), 400);
}

TEST_F(Server, PassesPathQueryHeadersAndRoute) {
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::get("/echo/a%20b?x=1&y=p+q&x=2", "X-Test: Hello\r\n"));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-type"), "application/json");
  auto j = body_of(*r);
  EXPECT_EQ(j["method"], "GET");
  EXPECT_EQ(j["path"], "/echo/a b");
  EXPECT_EQ(j["route"], "/echo/{id}");
  EXPECT_EQ(j["params"]["id"], "a b");
  EXPECT_EQ(j["query"]["x"], "2");
  EXPECT_EQ(j["query"]["y"], "p q");
  EXPECT_EQ(j["x_test"], "Hello");
  EXPECT_EQ(j["remote_ip"], "127.0.0.1");
}

TEST_F(Server, BodyArrivesByteExactAndHeadersAreSanitised) {
  start();
  std::string body;
  for (int i = 0; i < 100000; ++i)
    body.push_back(static_cast<char>(i * 7));
  raw_client c(port());
  auto r = c.roundtrip(t::post("/body", body));
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(r->body, body);
  EXPECT_EQ(r->header("content-type"), "application/octet-stream");
  EXPECT_EQ(r->header("x-custom"), "yes");
  EXPECT_EQ(r->header("x-evil"), ""); // a header value with CR/LF is dropped, not injected
  EXPECT_EQ(r->header("set-cookie"), "");
}

TEST_F(Server, ExpectContinueGetsAnInterimResponse) {
  start();
  raw_client c(port());
  std::string body(5000, 'b');
  ASSERT_TRUE(c.send("POST /body HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: " +
                     std::to_string(body.size()) + "\r\n\r\n"));
  auto interim = c.read_reply();
  ASSERT_TRUE(interim);
  EXPECT_EQ(interim->status, 100);
  ASSERT_TRUE(c.send(body));
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->body, body);
}

TEST_F(Server, PipelinedRequestsAreAnsweredInOrder) {
  start();
  raw_client c(port());
  ASSERT_TRUE(c.send(t::get("/echo/1") + t::get("/echo/2") + t::get("/echo/3")));
  for (const char* id : {"1", "2", "3"}) {
    auto r = c.read_reply();
    ASSERT_TRUE(r);
    EXPECT_EQ(body_of(*r)["params"]["id"], id);
  }
}

TEST_F(Server, RequestIdIsEchoedWhenSaneElseGenerated) {
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::get("/echo/1", "X-Request-Id: abc-123_XYZ\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("x-request-id"), "abc-123_XYZ");
  EXPECT_EQ(body_of(*r)["request_id"], "abc-123_XYZ");

  auto is_generated = [](const std::string& id) {
    return id.size() == 32 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
  };
  r = c.roundtrip(t::get("/echo/1"));
  ASSERT_TRUE(r);
  auto first = r->header("x-request-id");
  EXPECT_TRUE(is_generated(first)) << first;
  EXPECT_EQ(body_of(*r)["request_id"], first);
  r = c.roundtrip(t::get("/echo/1"));
  EXPECT_NE(r->header("x-request-id"), first);

  r = c.roundtrip(t::get("/echo/1", "X-Request-Id: " + std::string(129, 'a') + "\r\n"));
  EXPECT_TRUE(is_generated(r->header("x-request-id")));
  r = c.roundtrip(t::get("/echo/1", "X-Request-Id: has space\r\n"));
  EXPECT_TRUE(is_generated(r->header("x-request-id")));
  r = c.roundtrip(t::get("/echo/1", "X-Request-Id: caf\xc3\xa9\r\n"));
  EXPECT_TRUE(is_generated(r->header("x-request-id")));

  // Errors produced by the server itself carry the id too.
  r = c.roundtrip(t::get("/nope", "X-Request-Id: e-1\r\n"));
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->header("x-request-id"), "e-1");
  EXPECT_EQ(r->header("content-type"), "application/json");
}

TEST_F(Server, UnknownRouteIs404NamingThePath) {
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::get("/v1/nope%21?x=1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  auto j = body_of(*r);
  EXPECT_EQ(j["error"]["code"], "not_found");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("/v1/nope!"), std::string::npos);
  EXPECT_EQ(j.size(), 1u);
  EXPECT_EQ(j["error"].size(), 2u);
  // The connection stays usable after a 404.
  EXPECT_EQ(c.roundtrip(t::get("/echo/1"))->status, 200);
}

TEST_F(Server, WrongMethodIs405WithAllow) {
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::post("/echo/1", "{}"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("allow"), "DELETE, GET, HEAD");
  EXPECT_EQ(body_of(*r)["error"]["code"], "method_not_allowed");
  r = c.roundtrip("DELETE /echo/1 HTTP/1.1\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
}

TEST_F(Server, CorsAnswersPreflightsAndMarksAnswersForAllowedOrigins) {
  server_options o;
  o.cors = cors_policy::from_list("https://console.example");
  start(o);
  raw_client c(port());
  auto r = c.roundtrip("OPTIONS /echo/1 HTTP/1.1\r\nHost: t\r\nOrigin: https://console.example\r\n"
                       "Access-Control-Request-Method: GET\r\n"
                       "Access-Control-Request-Headers: authorization\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 204);
  EXPECT_EQ(r->header("access-control-allow-origin"), "https://console.example");
  EXPECT_NE(r->header("access-control-allow-headers").find("Authorization"), std::string::npos);
  r = c.roundtrip(t::get("/echo/1", "Origin: https://console.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("access-control-allow-origin"), "https://console.example");
  EXPECT_EQ(r->header("vary"), "Origin");
  EXPECT_NE(r->header("access-control-expose-headers").find("X-Request-Id"), std::string::npos);
  // Errors carry it too, or the page could not read what to fix.
  r = c.roundtrip(t::get("/nowhere", "Origin: https://console.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 404);
  EXPECT_EQ(r->header("access-control-allow-origin"), "https://console.example");
  // Another origin: its preflight is refused, its answers say nothing to its browser.
  r = c.roundtrip("OPTIONS /echo/1 HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.example\r\n"
                  "Access-Control-Request-Method: GET\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_EQ(body_of(*r)["error"]["code"], "forbidden");
  EXPECT_EQ(r->header("access-control-allow-origin"), "");
  r = c.roundtrip(t::get("/echo/1", "Origin: https://evil.example\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("access-control-allow-origin"), "");
  // No Origin (curl, servers): nothing changes.
  r = c.roundtrip(t::get("/echo/1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->header("access-control-allow-origin"), "");
}

TEST_F(Server, WithoutCorsAPreflightIsAnOrdinaryRequest) {
  start();
  raw_client c(port());
  auto r = c.roundtrip("OPTIONS /echo/1 HTTP/1.1\r\nHost: t\r\nOrigin: https://console.example\r\n"
                       "Access-Control-Request-Method: GET\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->header("access-control-allow-origin"), "");
}

TEST_F(Server, CorsMarksEventStreams) {
  routes_->add("GET", "/stream",
               [](request&&, responder done) { done(response::event_stream(stream_hooks{})); });
  server_options o;
  o.cors = cors_policy::from_list("*");
  start(o);
  raw_client c(port());
  auto head = c.roundtrip(t::get("/stream", "Origin: https://any.example\r\n"));
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("access-control-allow-origin"), "https://any.example");
}

// Load balancers and monitors probe with HEAD: the GET route answers, headers only.
TEST_F(Server, HeadIsAnsweredByTheGetRouteWithoutABody) {
  start();
  raw_client c(port());
  auto get = c.roundtrip(t::get("/echo/7"));
  ASSERT_TRUE(get);
  ASSERT_EQ(get->status, 200);
  ASSERT_FALSE(get->body.empty());
  auto head = c.roundtrip("HEAD /echo/7 HTTP/1.1\r\nHost: t\r\n\r\n", true);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  // The length of the body a GET would get (echo's body names the method, so one byte more).
  EXPECT_EQ(head->header("content-length"), std::to_string(get->body.size() + 1));
  EXPECT_EQ(head->header("content-type"), get->header("content-type"));
  // Nothing follows the headers: the next answer on the connection parses cleanly.
  auto again = c.roundtrip(t::get("/echo/8"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->status, 200);
  EXPECT_NE(again->body.find("8"), std::string::npos);
  // HEAD of an unknown path is still a 404 (headers only), and of a POST-only path a 405.
  auto missing = c.roundtrip("HEAD /nowhere HTTP/1.1\r\nHost: t\r\n\r\n", true);
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
}

TEST_F(Server, OversizedBodyIs413ThenClose) {
  server_options o;
  o.body_limit = 1000;
  start(o);
  raw_client c(port());
  auto r = c.roundtrip(t::post("/body", std::string(2000, 'x')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  auto j = body_of(*r);
  EXPECT_EQ(j["error"]["code"], "payload_too_large");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("1000 bytes"), std::string::npos);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_TRUE(c.closed_by_peer());

  // A body exactly at the limit is fine.
  raw_client c2(port());
  r = c2.roundtrip(t::post("/body", std::string(1000, 'y')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(Server, OversizedChunkedBodyIs413) {
  server_options o;
  o.body_limit = 1000;
  start(o);
  raw_client c(port());
  std::string chunk(600, 'z');
  auto r = c.roundtrip("POST /body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "258\r\n" +
                       chunk + "\r\n258\r\n" + chunk + "\r\n0\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413);
  EXPECT_EQ(body_of(*r)["error"]["code"], "payload_too_large");
}

TEST_F(Server, OversizedHeadersAre431) {
  server_options o;
  o.header_limit = 1024;
  start(o);
  raw_client c(port());
  auto r = c.roundtrip(t::get("/echo/1", "X-Big: " + std::string(4000, 'h') + "\r\n"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 431);
  EXPECT_EQ(body_of(*r)["error"]["code"], "headers_too_large");
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Server, MalformedHttpIs400ThenClose) {
  start();
  {
    raw_client c(port());
    auto r = c.roundtrip("NOT HTTP AT ALL\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(body_of(*r)["error"]["code"], "invalid_request");
    EXPECT_FALSE(r->header("x-request-id").empty());
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    raw_client c(port());
    auto r = c.roundtrip("POST /body HTTP/1.1\r\nHost: t\r\nContent-Length: abc\r\n\r\n");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_TRUE(c.closed_by_peer());
  }
  {
    raw_client c(port());
    auto r = c.roundtrip(t::get("/echo/%zz"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    EXPECT_EQ(body_of(*r)["error"]["code"], "invalid_request");
  }
  {
    raw_client c(port());
    auto r = c.roundtrip(t::get("*"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
  }
}

TEST_F(Server, Http10WithoutKeepAliveCloses) {
  start();
  raw_client c(port());
  auto r = c.roundtrip("GET /echo/1 HTTP/1.0\r\n\r\n");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Server, SlowlorisClientIsDisconnected) {
  server_options o;
  o.read_timeout = 300ms;
  start(o);
  raw_client c(port());
  ASSERT_TRUE(c.send("GET /echo/1 HTTP/1.1\r\nHost: t\r\nX-Slow: "));
  // Keep trickling bytes; the deadline runs from the first byte, so this must not help.
  auto begin = std::chrono::steady_clock::now();
  bool cut_off = false;
  for (int i = 0; i < 100 && !cut_off; ++i) {
    std::this_thread::sleep_for(50ms);
    cut_off = !c.send("a");
  }
  EXPECT_TRUE(cut_off);
  EXPECT_LT(std::chrono::steady_clock::now() - begin, 3s);
}

TEST_F(Server, SilentConnectionIsDisconnected) {
  server_options o;
  o.read_timeout = 200ms;
  start(o);
  raw_client c(port(), 3000ms);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Server, IdleKeepAliveConnectionIsClosed) {
  server_options o;
  o.idle_timeout = 200ms;
  o.read_timeout = 60s; // so only the idle timeout can explain the close
  start(o);
  raw_client c(port(), 3000ms);
  auto r = c.roundtrip(t::get("/echo/1"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Server, HandlerTimeoutIs503AndTheLateAnswerIsIgnored) {
  server_options o;
  o.request_timeout = 200ms;
  start(o);
  raw_client c(port());
  auto r = c.roundtrip(t::get("/park"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  EXPECT_EQ(body_of(*r)["error"]["code"], "upstream_timeout");
  EXPECT_FALSE(r->header("x-request-id").empty());

  auto late = parked_.pop();
  ASSERT_TRUE(late);
  (*late)(response::json(200, {{"late", true}})); // must be dropped, not written
  r = c.roundtrip(t::get("/echo/7"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_of(*r)["params"]["id"], "7");
}

TEST_F(Server, AnswerFromAnotherThread) {
  start();
  std::thread worker([this] {
    for (int i = 0; i < 20; ++i)
      if (auto r = parked_.pop())
        (*r)(response::json(201, {{"n", i}}));
  });
  raw_client c(port());
  for (int i = 0; i < 20; ++i) {
    auto r = c.roundtrip(t::get("/park"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201);
    EXPECT_EQ(body_of(*r)["n"], i);
  }
  worker.join();
}

TEST_F(Server, ThrowingHandlerIs500AndTheServerLivesOn) {
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::get("/throw"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(body_of(*r)["error"]["code"], "internal_error");
  EXPECT_EQ(body_of(*r)["error"]["message"], "internal error"); // no internals leak
  EXPECT_EQ(c.roundtrip(t::get("/echo/1"))->status, 200);
}

TEST_F(Server, DroppedResponderIs500) {
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::get("/drop"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500);
  EXPECT_EQ(body_of(*r)["error"]["code"], "internal_error");
  EXPECT_EQ(c.roundtrip(t::get("/echo/1"))->status, 200);
}

TEST_F(Server, DrainLetsInFlightRequestsFinish) {
  start();
  raw_client c(port());
  ASSERT_TRUE(c.send(t::get("/park")));
  auto pending = parked_.pop(); // the handler has the request
  ASSERT_TRUE(pending);
  EXPECT_EQ(srv_->in_flight(), 1u);

  srv_->stop_accepting();
  raw_client refused(port());
  EXPECT_FALSE(refused.connected());

  std::promise<void> draining;
  auto answerer = std::thread([&, r = *pending] {
    draining.get_future().wait();
    std::this_thread::sleep_for(100ms); // answer while drain() is waiting
    r(response::json(200, {{"done", true}}));
  });
  draining.set_value();
  EXPECT_TRUE(srv_->drain(5s));
  answerer.join();

  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(body_of(*r)["done"], true);
  EXPECT_EQ(r->header("connection"), "close");
  EXPECT_EQ(srv_->in_flight(), 0u);
  EXPECT_EQ(srv_->connections(), 0u);
}

TEST_F(Server, DrainClosesIdleKeepAliveConnections) {
  start();
  raw_client c(port());
  ASSERT_EQ(c.roundtrip(t::get("/echo/1"))->status, 200);
  EXPECT_TRUE(srv_->drain(2s));
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Server, DrainReportsTimeout) {
  start();
  raw_client c(port());
  ASSERT_TRUE(c.send(t::get("/park")));
  auto pending = parked_.pop();
  ASSERT_TRUE(pending);
  EXPECT_FALSE(srv_->drain(200ms));
  (*pending)(response{});
  auto r = c.read_reply();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
}

TEST_F(Server, StopWithOpenConnectionsAndParkedResponders) {
  start();
  raw_client c(port());
  ASSERT_TRUE(c.send(t::get("/park")));
  auto pending = parked_.pop();
  ASSERT_TRUE(pending);
  srv_->stop();
  (*pending)(response{}); // harmless after stop
  srv_.reset();
}

TEST_F(Server, PortInUseIsAClearError) {
  start();
  server_options o;
  o.port = port();
  server second(o, routes_);
  try {
    second.start();
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "127.0.0.1:" + std::to_string(port()) + " is already in use");
  }
}

TEST_F(Server, BadAddressIsAClearError) {
  server_options o;
  o.address = "not-an-ip";
  server s(o, routes_);
  EXPECT_THROW(s.start(), std::runtime_error);
}

TEST_F(Server, ObserverSeesEveryCompletedRequest) {
  auto obs = std::make_shared<recording_observer>();
  start({}, obs);
  raw_client c(port());
  ASSERT_EQ(c.roundtrip(t::get("/echo/5", "X-Request-Id: r-1\r\n"))->status, 200);
  ASSERT_EQ(c.roundtrip(t::get("/missing"))->status, 404);
  auto seen = obs->wait_for(2);
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].route, "/echo/{id}");
  EXPECT_EQ(seen[0].path, "/echo/5");
  EXPECT_EQ(seen[0].status, 200);
  EXPECT_EQ(seen[0].request_id, "r-1");
  EXPECT_GT(seen[0].latency.count(), 0);
  EXPECT_EQ(seen[1].route, "");
  EXPECT_EQ(seen[1].status, 404);
}

TEST_F(Server, MetricsObserverCountsByRouteAndStatus) {
  parley::metrics::registry reg;
  metrics_observer metrics(reg);
  auto obs = std::make_shared<recording_observer>(&metrics);
  start({}, obs);
  raw_client c(port());
  ASSERT_EQ(c.roundtrip(t::get("/echo/5"))->status, 200);
  ASSERT_EQ(c.roundtrip(t::get("/echo/6"))->status, 200);
  ASSERT_EQ(c.roundtrip(t::get("/random/scanner/path"))->status, 404);
  obs->wait_for(3);
  auto text = reg.render();
  EXPECT_NE(
      text.find(R"(parley_http_requests_total{method="GET",route="/echo/{id}",status="200"} 2)"),
      std::string::npos)
      << text;
  EXPECT_NE(text.find(R"(route="unmatched",status="404"} 1)"), std::string::npos) << text;
  EXPECT_NE(text.find("parley_http_request_duration_seconds_bucket"), std::string::npos);
}

// ---- streamed responses (Server-Sent Events) ----------------------------------------------

namespace {

/// A stream route whose writer the test drives; `closed` counts the close hook's calls.
struct stream_probe {
  std::promise<std::shared_ptr<stream_writer>> opened;
  std::atomic<int> closed{0};
  std::promise<void> closed_once;
};

/// A stream route at /stream whose writer goes to `probe` (the test drives it); its close hook
/// counts and signals.
void add_probe_route(router& routes, const std::string& method,
                     std::shared_ptr<stream_probe> probe) {
  routes.add(method, "/stream", [probe](request&&, responder done) {
    stream_hooks h;
    h.opened = [probe](std::shared_ptr<stream_writer> w) { probe->opened.set_value(w); };
    h.closed = [probe] {
      if (probe->closed++ == 0)
        probe->closed_once.set_value();
    };
    done(response::event_stream(std::move(h)));
  });
}

} // namespace

TEST_F(Server, StreamSendsChunkedEventsAndEndsOnFinish) {
  auto probe = std::make_shared<stream_probe>();
  routes_->add("GET", "/stream", [probe](request&&, responder done) {
    stream_hooks h;
    h.opened = [](std::shared_ptr<stream_writer> w) {
      EXPECT_TRUE(w->send("data: a\n\n"));
      EXPECT_TRUE(w->send("data: bb\n\n"));
      w->finish();
      EXPECT_FALSE(w->send("data: late\n\n"));
    };
    h.closed = [probe] { probe->closed++; };
    done(response::event_stream(std::move(h)));
  });
  auto obs = std::make_shared<recording_observer>();
  start({}, obs);
  raw_client c(port());
  auto head = c.roundtrip(t::get("/stream"));
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("content-type"), "text/event-stream");
  EXPECT_EQ(head->header("transfer-encoding"), "chunked");
  EXPECT_EQ(head->header("cache-control"), "no-cache");
  EXPECT_FALSE(head->header("x-request-id").empty());
  auto body = c.read_until("0\r\n\r\n");
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "9\r\ndata: a\n\n\r\na\r\ndata: bb\n\n\r\n0\r\n\r\n");
  EXPECT_TRUE(c.closed_by_peer());
  auto seen = obs->wait_for(1);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].status, 200);
  EXPECT_EQ(probe->closed.load(), 1);
}

TEST_F(Server, StreamEndsWhenTheClientGoesAway) {
  auto probe = std::make_shared<stream_probe>();
  add_probe_route(*routes_, "GET", probe);
  start();
  std::shared_ptr<stream_writer> w;
  {
    raw_client c(port());
    ASSERT_TRUE(c.roundtrip(t::get("/stream")));
    auto f = probe->opened.get_future();
    ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
    w = f.get();
    EXPECT_TRUE(w->send("data: x\n\n"));
    ASSERT_TRUE(c.read_until("data: x\n\n\r\n"));
    // A streaming request does not count as in flight (drain would wait for it otherwise).
    EXPECT_EQ(srv_->in_flight(), 0u);
  }
  ASSERT_EQ(probe->closed_once.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(w->done());
  EXPECT_FALSE(w->send("data: y\n\n"));
  EXPECT_EQ(probe->closed.load(), 1);
}

TEST_F(Server, StreamSendsHeartbeatsWhenQuiet) {
  routes_->add("GET", "/stream", [](request&&, responder done) {
    stream_hooks h;
    h.heartbeat = ": hb\n\n";
    done(response::event_stream(std::move(h)));
  });
  server_options o;
  o.stream_heartbeat = 50ms;
  start(o);
  raw_client c(port());
  ASSERT_TRUE(c.roundtrip(t::get("/stream")));
  ASSERT_TRUE(c.read_until(": hb\n\n\r\n"));
  ASSERT_TRUE(c.read_until(": hb\n\n\r\n")); // and again
}

TEST_F(Server, StreamEndsAtItsEndTimeWithItsLastWords) {
  // A stream may live no longer than the credential that opened it: at ends_at the server sends
  // the last words and ends the stream cleanly, even when events keep it from ever being quiet.
  auto probe = std::make_shared<stream_probe>();
  routes_->add("GET", "/stream", [probe](request&&, responder done) {
    stream_hooks h;
    h.heartbeat = ": hb\n\n";
    h.ends_at = std::chrono::steady_clock::now() + 300ms;
    h.last_words = "event: bye\n\n";
    h.opened = [probe](std::shared_ptr<stream_writer> w) { probe->opened.set_value(w); };
    h.closed = [probe] {
      if (probe->closed++ == 0)
        probe->closed_once.set_value();
    };
    done(response::event_stream(std::move(h)));
  });
  server_options o;
  o.stream_heartbeat = 10s; // the end time, not a heartbeat tick, must end it
  start(o);
  raw_client c(port());
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.roundtrip(t::get("/stream")));
  auto f = probe->opened.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto w = f.get();
  std::atomic<bool> stop{false};
  std::thread busy([&] {
    while (!stop && w->send("data: tick\n\n"))
      std::this_thread::sleep_for(20ms);
  });
  auto body = c.read_until("event: bye\n\n\r\n0\r\n\r\n");
  stop = true;
  busy.join();
  ASSERT_TRUE(body);
  EXPECT_NE(body->find("data: tick"), std::string::npos);
  auto took = std::chrono::steady_clock::now() - started;
  EXPECT_GE(took, 250ms);
  EXPECT_LT(took, 5s);
  EXPECT_TRUE(c.closed_by_peer());
  ASSERT_EQ(probe->closed_once.get_future().wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(w->done());
}

TEST_F(Server, StreamIsRecheckedPeriodicallyAndTheCheckMayEndIt) {
  // What a stream relies on (its credential) can be withdrawn while it is open: the owner's
  // recheck runs every recheck_every, also while events flow, and may end the stream.
  auto checks = std::make_shared<std::atomic<int>>(0);
  routes_->add("GET", "/stream", [checks](request&&, responder done) {
    stream_hooks h;
    h.recheck_every = 50ms;
    h.recheck = [checks](const std::shared_ptr<stream_writer>& w) {
      if (++*checks == 3) {
        w->send("event: revoked\n\n");
        w->finish();
      }
    };
    h.opened = [](std::shared_ptr<stream_writer> w) {
      std::thread([w] {
        while (w->send("data: tick\n\n"))
          std::this_thread::sleep_for(10ms);
      }).detach();
    };
    done(response::event_stream(std::move(h)));
  });
  server_options o;
  o.stream_heartbeat = 10s;
  start(o);
  raw_client c(port());
  auto started = std::chrono::steady_clock::now();
  ASSERT_TRUE(c.roundtrip(t::get("/stream")));
  ASSERT_TRUE(c.read_until("event: revoked\n\n\r\n0\r\n\r\n"));
  EXPECT_GE(std::chrono::steady_clock::now() - started, 140ms);
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(checks->load(), 3);
}

TEST_F(Server, StreamWhoseEndTimeHasPassedEndsAtOnce) {
  routes_->add("GET", "/stream", [](request&&, responder done) {
    stream_hooks h;
    h.ends_at = std::chrono::steady_clock::now() - 1s;
    h.last_words = "event: bye\n\n";
    done(response::event_stream(std::move(h)));
  });
  server_options o;
  o.stream_heartbeat = 10s;
  start(o);
  raw_client c(port());
  ASSERT_TRUE(c.roundtrip(t::get("/stream")));
  ASSERT_TRUE(c.read_until("event: bye\n\n\r\n0\r\n\r\n"));
  EXPECT_TRUE(c.closed_by_peer());
}

TEST_F(Server, DrainEndsOpenStreams) {
  auto probe = std::make_shared<stream_probe>();
  add_probe_route(*routes_, "GET", probe);
  start();
  raw_client c(port());
  ASSERT_TRUE(c.roundtrip(t::get("/stream")));
  EXPECT_TRUE(srv_->drain(5s));
  ASSERT_TRUE(c.read_until("0\r\n\r\n"));
  EXPECT_TRUE(c.closed_by_peer());
  EXPECT_EQ(probe->closed.load(), 1);
}

TEST_F(Server, StreamToAClientThatDoesNotReadEndsAtTheQueueLimit) {
  auto probe = std::make_shared<stream_probe>();
  add_probe_route(*routes_, "GET", probe);
  server_options o;
  o.stream_queue_limit = 256 * 1024;
  start(o);
  raw_client c(port());
  ASSERT_TRUE(c.roundtrip(t::get("/stream")));
  auto f = probe->opened.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  auto w = f.get();
  std::string event = "data: " + std::string(64 * 1024, 'x') + "\n\n";
  auto closed = probe->closed_once.get_future();
  // Far more than the socket buffers and the queue hold together; the client reads nothing.
  for (int i = 0; i < 2000 && closed.wait_for(0s) != std::future_status::ready; ++i)
    if (!w->send(event))
      break;
  ASSERT_EQ(closed.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(w->done());
}

TEST_F(Server, StreamAnswerToANonGetIsAnOrdinaryResponse) {
  auto probe = std::make_shared<stream_probe>();
  add_probe_route(*routes_, "POST", probe);
  start();
  raw_client c(port());
  auto r = c.roundtrip(t::post("/stream", ""));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(r->header("content-length"), "0");
  EXPECT_EQ(probe->closed.load(), 1);
}

TEST_F(Server, StreamOpenedWhileDrainingEndsAtOnce) {
  start();
  raw_client c(port());
  ASSERT_TRUE(c.send(t::get("/park")));
  auto parked = parked_.pop();
  ASSERT_TRUE(parked);
  auto drained = std::async(std::launch::async, [this] { return srv_->drain(5s); });
  // drain() found the request being handled; the handler then answers with a stream.
  std::this_thread::sleep_for(50ms);
  auto closed = std::make_shared<std::atomic<int>>(0);
  stream_hooks h;
  h.closed = [closed] { (*closed)++; };
  (*parked)(response::event_stream(std::move(h)));
  ASSERT_EQ(drained.wait_for(3s), std::future_status::ready) << "drain waited for the stream";
  EXPECT_TRUE(drained.get());
  ASSERT_TRUE(c.read_until("0\r\n\r\n"));
  EXPECT_EQ(closed->load(), 1);
}

TEST_F(Server, StreamAnswerArrivingAfterTheTimeoutHearsItsEnd) {
  server_options o;
  o.request_timeout = 50ms;
  start(o);
  raw_client c(port());
  auto r = c.roundtrip(t::get("/park"));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 503);
  auto parked = parked_.pop();
  ASSERT_TRUE(parked);
  auto closed = std::make_shared<std::promise<void>>();
  stream_hooks h;
  h.closed = [closed] { closed->set_value(); };
  (*parked)(response::event_stream(std::move(h)));
  EXPECT_EQ(closed->get_future().wait_for(5s), std::future_status::ready);
}

TEST_F(Server, StreamToAnHttp10ClientIsNotChunked) {
  routes_->add("GET", "/stream", [](request&&, responder done) {
    stream_hooks h;
    h.opened = [](std::shared_ptr<stream_writer> w) {
      w->send("data: a\n\n");
      w->finish();
    };
    done(response::event_stream(std::move(h)));
  });
  start();
  raw_client c(port());
  auto head = c.roundtrip("GET /stream HTTP/1.0\r\nHost: t\r\n\r\n");
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);
  EXPECT_EQ(head->header("transfer-encoding"), "");
  EXPECT_EQ(head->header("connection"), "close");
  auto body = c.read_until("data: a\n\n");
  ASSERT_TRUE(body);
  EXPECT_EQ(*body, "data: a\n\n");
  EXPECT_TRUE(c.closed_by_peer());
}
