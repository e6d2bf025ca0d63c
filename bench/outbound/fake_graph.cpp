#include "bench/outbound/fake_graph.hpp"

#include <condition_variable>
#include <map>
#include <thread>
#include <utility>

#include "http/router.hpp"

namespace parley::bench {

namespace {

/// The `to` of a Graph API send body. Parley writes compact JSON, so a plain search suffices and
/// keeps a JSON parser off the bench's hot path.
std::string recipient_of(const std::string& body) {
  constexpr std::string_view key = "\"to\":\"";
  auto at = body.find(key);
  if (at == std::string::npos)
    return {};
  auto from = at + key.size();
  auto end = body.find('"', from);
  return end == std::string::npos ? std::string{} : body.substr(from, end - from);
}

} // namespace

/// Answers responders when their time has come, on its own thread: the I/O thread never sleeps.
struct fake_graph::delayer {
  delayer()
      : worker([this] { run(); }) {}
  ~delayer() {
    {
      std::lock_guard lock{mu};
      stopping = true;
    }
    cv.notify_one();
    worker.join();
  }

  void schedule(clock::time_point due, http::responder respond, http::response r) {
    {
      std::lock_guard lock{mu};
      queue.emplace(due, std::pair{std::move(respond), std::move(r)});
    }
    cv.notify_one();
  }

  void run() {
    std::unique_lock lock{mu};
    while (!stopping) {
      if (queue.empty()) {
        cv.wait(lock);
        continue;
      }
      auto due = queue.begin()->first;
      if (clock::now() < due) {
        cv.wait_until(lock, due);
        continue;
      }
      auto item = std::move(queue.begin()->second);
      queue.erase(queue.begin());
      lock.unlock();
      item.first(std::move(item.second));
      lock.lock();
    }
  }

  std::mutex mu;
  std::condition_variable cv;
  std::multimap<clock::time_point, std::pair<http::responder, http::response>> queue;
  bool stopping = false;
  std::thread worker; // last: starts after the members it uses
};

fake_graph::fake_graph(std::chrono::milliseconds latency)
    : latency_(latency) {
  if (latency_.count() > 0)
    delayer_ = std::make_unique<delayer>();
  auto routes = std::make_shared<http::router>();
  routes->add("POST", "/{version}/{pnid}/messages", [this](http::request&& req, http::responder r) {
    on_message(req.params["pnid"], req.body, std::move(r));
  });
  routes->add("GET", "/{version}/{pnid}", [this](http::request&& req, http::responder r) {
    ++health_checks_;
    http::response res;
    res.body = "{\"id\":\"" + req.params["pnid"] +
               "\",\"verified_name\":\"Parley Bench\",\"quality_rating\":\"GREEN\"}";
    answer(std::move(r), std::move(res));
  });
  http::server_options opts;
  opts.address = "127.0.0.1";
  opts.port = 0;
  opts.io_threads = 1;
  server_ = std::make_unique<http::server>(opts, std::move(routes));
  server_->start();
}

fake_graph::~fake_graph() {
  server_->stop();
  delayer_.reset();
}

std::string fake_graph::base_url() const {
  return "http://127.0.0.1:" + std::to_string(server_->port());
}

void fake_graph::on_message(const std::string& phone_number_id, const std::string& body,
                            http::responder respond) {
  auto now = clock::now();
  auto to = recipient_of(body);
  {
    std::lock_guard lock{mu_};
    arrivals_[phone_number_id].push_back(now);
    ++recipients_[to];
    ++received_;
    last_ = now;
  }
  http::response res;
  res.body = R"({"messaging_product":"whatsapp","contacts":[{"input":")" + to + R"(","wa_id":")" +
             to + R"("}],"messages":[{"id":"wamid.bench)" + std::to_string(++next_wamid_) +
             R"("}]})";
  answer(std::move(respond), std::move(res));
}

void fake_graph::answer(http::responder respond, http::response r) {
  if (delayer_)
    delayer_->schedule(clock::now() + latency_, std::move(respond), std::move(r));
  else
    respond(std::move(r));
}

uint64_t fake_graph::received() const {
  std::lock_guard lock{mu_};
  return received_;
}

uint64_t fake_graph::health_checks() const {
  return health_checks_.load();
}

fake_graph::clock::time_point fake_graph::last_arrival() const {
  std::lock_guard lock{mu_};
  return last_;
}

std::vector<fake_graph::clock::time_point>
fake_graph::arrivals_of(const std::string& phone_number_id) const {
  std::lock_guard lock{mu_};
  auto it = arrivals_.find(phone_number_id);
  return it == arrivals_.end() ? std::vector<clock::time_point>{} : it->second;
}

uint64_t fake_graph::arrivals_between(clock::time_point from, clock::time_point to) const {
  std::lock_guard lock{mu_};
  uint64_t n = 0;
  for (const auto& [pnid, times] : arrivals_)
    for (auto t : times)
      n += t >= from && t < to;
  return n;
}

std::unordered_map<std::string, uint32_t> fake_graph::recipients() const {
  std::lock_guard lock{mu_};
  return recipients_;
}

} // namespace parley::bench
