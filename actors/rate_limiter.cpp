#include "actors/rate_limiter.hpp"

#include <algorithm>
#include <cmath>
#include <sys/time.h>

#include <hiredis/hiredis.h>

namespace parley {

namespace {

// All or nothing over KEYS, on Redis's own clock so every node agrees on time. Each bucket is a
// hash {t = tokens, ts = microseconds of the last update} that expires once it would be full
// again (a full bucket and no bucket are the same thing). ARGV: cost, then rate and burst per key.
// Returns {allowed 1|0, wait in microseconds, 1-based index of the emptiest bucket}.
constexpr const char* bucket_script = R"(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local cost = tonumber(ARGV[1])
local tokens = {}
local wait, worst = 0, 0
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', KEYS[i], 't', 'ts')
  local tk, ts = tonumber(v[1]), tonumber(v[2])
  if tk == nil or ts == nil then tk, ts = burst, now end
  if now > ts then tk = math.min(burst, tk + (now - ts) * rate / 1000000) end
  tokens[i] = tk
  if tk < cost then
    local w = math.ceil((cost - tk) * 1000000 / rate)
    if w > wait then wait, worst = w, i end
  end
end
if wait > 0 then return {0, wait, worst} end
for i = 1, #KEYS do
  local rate, burst = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  redis.call('HSET', KEYS[i], 't', tostring(tokens[i] - cost), 'ts', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate * 1000) + 1000)
end
return {1, 0, 0}
)";

constexpr auto reconnect_interval = std::chrono::seconds(1);

std::string bucket_key(const rate_bucket& b) {
  return "parley:rl:" + b.scope + ":" + b.id;
}

struct redis_address {
  std::string host = "127.0.0.1";
  int port = 6379;
  std::string password;
};

redis_address parse_redis_url(std::string_view url) {
  redis_address a;
  if (url.starts_with("redis://"))
    url.remove_prefix(8);
  url = url.substr(0, url.find('/'));
  if (auto at = url.rfind('@'); at != std::string_view::npos) {
    auto userinfo = url.substr(0, at);
    if (auto colon = userinfo.find(':'); colon != std::string_view::npos)
      a.password = std::string{userinfo.substr(colon + 1)};
    url.remove_prefix(at + 1);
  }
  if (auto colon = url.rfind(':'); colon != std::string_view::npos) {
    try {
      a.port = std::stoi(std::string{url.substr(colon + 1)});
    } catch (const std::exception&) {
      a.port = 6379;
    }
    url = url.substr(0, colon);
  }
  if (!url.empty())
    a.host = std::string{url};
  return a;
}

timeval to_timeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

struct reply_deleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using reply_ptr = std::unique_ptr<redisReply, reply_deleter>;

} // namespace

struct rate_limiter::redis_conn {
  ~redis_conn() {
    if (ctx)
      redisFree(ctx);
  }
  redisContext* ctx = nullptr;
};

rate_limiter::rate_limiter(const config::ratelimit_config& cfg, std::string redis_url,
                           metrics::registry& m, clock_fn now)
    : cfg_(cfg)
    , redis_url_(std::move(redis_url))
    , metrics_(m)
    , now_(std::move(now)) {
  backend_redis_ =
      &m.get_gauge("parley_rate_limit_backend", "Where rate-limit decisions are taken (1 = in use)",
                   {{"backend", "redis"}});
  backend_local_ =
      &m.get_gauge("parley_rate_limit_backend", "Where rate-limit decisions are taken (1 = in use)",
                   {{"backend", "local"}});
  redis_errors_ = &m.get_counter("parley_rate_limit_redis_errors_total",
                                 "Rate-limit decisions that fell back to the local buckets because "
                                 "Redis failed or was unreachable");
  backend_local_->set(1);
  if (!redis_url_.empty() && cfg_.enabled)
    worker_ = std::thread([this] { redis_loop(); });
}

rate_limiter::~rate_limiter() {
  stop();
}

void rate_limiter::stop() {
  redis_up_ = false; // new decisions are local from here on
  {
    std::lock_guard lock{q_mu_};
    stopping_ = true;
  }
  q_cv_.notify_all();
  if (worker_.joinable())
    worker_.join();
  std::deque<pending> left;
  {
    std::lock_guard lock{q_mu_};
    left.swap(queue_);
  }
  for (auto& p : left)
    finish(p.buckets, take_local(p.buckets), p.done);
}

bool rate_limiter::redis_active() const {
  return redis_up_.load();
}

void rate_limiter::count_refusal(const std::string& scope) {
  metrics_
      .get_counter("parley_rate_limited_total", "Requests refused by a rate limit, by bucket scope",
                   {{"scope", scope}})
      .inc();
}

rate_verdict rate_limiter::take_local(const std::vector<rate_bucket>& buckets) {
  // The clock is read under the lock so decisions reach the buckets in time order.
  std::lock_guard lock{local_mu_};
  auto now = now_();
  if (local_.size() + buckets.size() > static_cast<size_t>(cfg_.max_keys)) {
    // Full buckets carry no information; if that is not enough, forget everything (more
    // permissive for a moment, never wrong in the refusing direction).
    std::erase_if(local_, [now](const auto& kv) { return kv.second.bucket.full(now); });
    if (local_.size() + buckets.size() > static_cast<size_t>(cfg_.max_keys))
      local_.clear();
  }
  std::vector<local_bucket*> found;
  rate_verdict v;
  for (const auto& b : buckets) {
    auto key = bucket_key(b);
    auto it = local_.find(key);
    if (it == local_.end())
      it = local_
               .emplace(key,
                        local_bucket{domain::token_bucket{b.rate, b.burst, now}, b.rate, b.burst})
               .first;
    else if (it->second.rate != b.rate || it->second.burst != b.burst) {
      // The plan changed: keep what was earned, under the new limits.
      it->second.bucket.reconfigure(b.rate, b.burst, now);
      it->second.rate = b.rate;
      it->second.burst = b.burst;
    }
    // Only a bucket without a whole token refuses: wait_time of an instant earlier than the
    // bucket's last one (an injected or skewed clock) is positive even with tokens to spare.
    if (it->second.bucket.tokens(now) < 1.0) {
      auto wait = std::max(it->second.bucket.wait_time(now), std::chrono::nanoseconds{1});
      if (wait > v.retry_after) {
        v.allowed = false;
        v.retry_after = wait;
        v.scope = b.scope;
      }
    }
    found.push_back(&it->second);
  }
  if (v.allowed)
    for (auto* b : found)
      b->bucket.try_take(now);
  return v;
}

void rate_limiter::finish(const std::vector<rate_bucket>& buckets, rate_verdict v,
                          const done_fn& done) {
  if (!v.allowed) {
    count_refusal(v.scope);
    if (v.scope == "ip") {
      std::lock_guard lock{local_mu_};
      if (blocked_until_.size() >= static_cast<size_t>(cfg_.max_keys)) {
        auto now = now_();
        std::erase_if(blocked_until_, [now](const auto& kv) { return kv.second <= now; });
      }
      for (const auto& b : buckets)
        if (b.scope == "ip")
          blocked_until_[b.id] = now_() + v.retry_after;
    }
  }
  if (done)
    done(std::move(v));
}

void rate_limiter::take(std::vector<rate_bucket> buckets, done_fn done) {
  if (!cfg_.enabled || buckets.empty()) {
    if (done)
      done(rate_verdict{});
    return;
  }
  if (!redis_up_.load()) {
    auto v = take_local(buckets);
    finish(buckets, std::move(v), done);
    return;
  }
  {
    std::lock_guard lock{q_mu_};
    queue_.push_back(pending{std::move(buckets), std::move(done)});
  }
  q_cv_.notify_one();
}

bool rate_limiter::ip_blocked(const std::string& ip, std::chrono::nanoseconds& retry_after) {
  if (!cfg_.enabled)
    return false;
  std::lock_guard lock{local_mu_};
  auto it = blocked_until_.find(ip);
  if (it == blocked_until_.end())
    return false;
  auto now = now_();
  if (it->second <= now) {
    blocked_until_.erase(it);
    return false;
  }
  retry_after = it->second - now;
  count_refusal("ip");
  return true;
}

void rate_limiter::ip_failed(const std::string& ip, done_fn done) {
  rate_bucket b{"ip", ip, cfg_.ip_failures_per_minute / 60.0,
                static_cast<double>(cfg_.ip_failure_burst)};
  take({std::move(b)}, std::move(done));
}

bool rate_limiter::redis_connect() {
  auto addr = parse_redis_url(redis_url_);
  auto timeout = to_timeval(std::chrono::milliseconds(cfg_.redis_timeout_ms));
  auto conn = std::make_unique<redis_conn>();
  conn->ctx = redisConnectWithTimeout(addr.host.c_str(), addr.port, timeout);
  if (!conn->ctx || conn->ctx->err)
    return false;
  redisSetTimeout(conn->ctx, timeout);
  if (!addr.password.empty()) {
    reply_ptr r{
        static_cast<redisReply*>(redisCommand(conn->ctx, "AUTH %s", addr.password.c_str()))};
    if (!r || r->type == REDIS_REPLY_ERROR)
      return false;
  }
  reply_ptr r{static_cast<redisReply*>(redisCommand(conn->ctx, "SCRIPT LOAD %s", bucket_script))};
  if (!r || r->type != REDIS_REPLY_STRING)
    return false;
  script_sha_.assign(r->str, r->len);
  conn_ = std::move(conn);
  return true;
}

void rate_limiter::redis_down(const std::string& why) {
  conn_.reset();
  if (redis_up_.exchange(false)) {
    lg_.warn("Redis unreachable: rate limits are per node until it is back", {{"error", why}});
    backend_redis_->set(0);
    backend_local_->set(1);
  }
}

void rate_limiter::redis_loop() {
  bool reported = false;
  while (true) {
    if (!conn_) {
      if (redis_connect()) {
        redis_up_ = true;
        backend_redis_->set(1);
        backend_local_->set(0);
        lg_.info("rate limits shared through Redis");
        reported = false;
      } else {
        if (!reported) {
          lg_.warn("Redis unreachable: rate limits are per node until it is back",
                   {{"redis", "not connected"}});
          reported = true;
        }
        // Decisions queued before the outage was noticed are taken here, not left waiting.
        std::deque<pending> stranded;
        {
          std::lock_guard lock{q_mu_};
          stranded.swap(queue_);
        }
        for (auto& p : stranded) {
          redis_errors_->inc();
          finish(p.buckets, take_local(p.buckets), p.done);
        }
        std::unique_lock lock{q_mu_};
        if (q_cv_.wait_for(lock, reconnect_interval, [this] { return stopping_; }))
          return;
        continue;
      }
    }
    std::deque<pending> batch;
    {
      std::unique_lock lock{q_mu_};
      q_cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (stopping_ && queue_.empty())
        return;
      batch.swap(queue_);
    }
    // Pipelined: every decision of the batch in one round trip.
    std::vector<std::vector<std::string>> args(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& a = args[i];
      a = {"EVALSHA", script_sha_, std::to_string(batch[i].buckets.size())};
      for (const auto& b : batch[i].buckets)
        a.push_back(bucket_key(b));
      a.push_back("1");
      for (const auto& b : batch[i].buckets) {
        a.push_back(std::to_string(b.rate));
        a.push_back(std::to_string(b.burst));
      }
      std::vector<const char*> argv;
      std::vector<size_t> lens;
      for (const auto& s : a) {
        argv.push_back(s.data());
        lens.push_back(s.size());
      }
      redisAppendCommandArgv(conn_->ctx, static_cast<int>(argv.size()), argv.data(), lens.data());
    }
    std::string failure;
    std::vector<reply_ptr> replies(batch.size());
    for (size_t i = 0; i < batch.size() && failure.empty(); ++i) {
      redisReply* raw = nullptr;
      if (redisGetReply(conn_->ctx, reinterpret_cast<void**>(&raw)) != REDIS_OK)
        failure = conn_->ctx->errstr[0] ? conn_->ctx->errstr : "connection lost";
      replies[i].reset(raw);
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      auto& p = batch[i];
      auto& r = replies[i];
      if (failure.empty() && r && r->type == REDIS_REPLY_ERROR &&
          std::string_view{r->str, r->len}.starts_with("NOSCRIPT")) {
        // Redis restarted (or flushed its scripts) since we loaded it: EVAL caches it again.
        // Only now, with the pipeline drained, may a plain command use the connection.
        auto eval = args[i];
        eval[0] = "EVAL";
        eval[1] = bucket_script;
        std::vector<const char*> argv;
        std::vector<size_t> lens;
        for (const auto& a : eval) {
          argv.push_back(a.data());
          lens.push_back(a.size());
        }
        r.reset(static_cast<redisReply*>(
            redisCommandArgv(conn_->ctx, static_cast<int>(argv.size()), argv.data(), lens.data())));
        if (!r)
          failure = conn_->ctx->errstr[0] ? conn_->ctx->errstr : "connection lost";
      }
      if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 3) {
        rate_verdict v;
        v.allowed = r->element[0]->integer == 1;
        if (!v.allowed) {
          v.retry_after = std::chrono::microseconds(r->element[1]->integer);
          auto idx = static_cast<size_t>(r->element[2]->integer);
          v.scope = idx >= 1 && idx <= p.buckets.size() ? p.buckets[idx - 1].scope : "";
        }
        finish(p.buckets, std::move(v), p.done);
        continue;
      }
      // Never fail a request because Redis failed: decide it here.
      redis_errors_->inc();
      if (r && r->type == REDIS_REPLY_ERROR)
        lg_.warn("Redis rate-limit script failed", {{"error", std::string{r->str, r->len}}});
      auto v = take_local(p.buckets);
      finish(p.buckets, std::move(v), p.done);
    }
    if (!failure.empty())
      redis_down(failure);
  }
}

std::string client_ip(const std::string& peer, std::string_view forwarded_for,
                      std::string_view trusted_proxies) {
  auto trimmed = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
      s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
      s.remove_suffix(1);
    return s;
  };
  auto trusted = [&](std::string_view ip) {
    auto list = trusted_proxies;
    while (!list.empty()) {
      auto comma = list.find(',');
      if (trimmed(list.substr(0, comma)) == ip)
        return true;
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(comma + 1);
    }
    return false;
  };
  if (trusted_proxies.empty() || forwarded_for.empty() || !trusted(peer))
    return peer;
  // Right to left: each trusted proxy appended the address it received from.
  auto rest = forwarded_for;
  while (!rest.empty()) {
    auto comma = rest.rfind(',');
    auto ip = trimmed(comma == std::string_view::npos ? rest : rest.substr(comma + 1));
    if (!ip.empty() && !trusted(ip))
      return std::string{ip};
    if (comma == std::string_view::npos)
      break;
    rest = rest.substr(0, comma);
  }
  return peer;
}

} // namespace parley
