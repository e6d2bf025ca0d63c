#include "http/message.hpp"

#include <atomic>

#include <nlohmann/json.hpp>

#include "runtime/errors.hpp"

namespace parley::http {

std::string_view request::header(std::string_view lower_name) const {
  for (const auto& [name, value] : headers)
    if (name == lower_name)
      return value;
  return {};
}

response response::json(int status, const nlohmann::json& body) {
  response r;
  r.status = status;
  // Replace invalid UTF-8 instead of throwing: error messages may quote client input.
  r.body = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return r;
}

response response::event_stream(stream_hooks hooks) {
  response r;
  r.status = 200;
  r.content_type = "text/event-stream";
  r.headers.emplace_back("Cache-Control", "no-cache");
  // nginx buffers proxied bodies unless told not to; events must not wait in a proxy.
  r.headers.emplace_back("X-Accel-Buffering", "no");
  r.stream = std::make_shared<stream_hooks>(std::move(hooks));
  return r;
}

response response::no_content() {
  return response{204, "", "", {}, nullptr};
}

response response::error(int status, std::string_view code, std::string_view message) {
  return json(status,
              {{"error", {{"code", std::string(code)}, {"message", std::string(message)}}}});
}

response response::from_error(parley::errc code, std::string_view message) {
  return error(parley::http_status(code), parley::api_code(code), message);
}

struct responder::state {
  explicit state(deliver_fn d)
      : deliver(std::move(d)) {}
  state(const state&) = delete;
  state& operator=(const state&) = delete;

  ~state() {
    if (!done.exchange(true) && deliver) {
      try {
        deliver(
            response::error(500, "internal_error", "the request was dropped without an answer"));
      } catch (...) {
        // A destructor must not throw; the server's request timeout still answers the client.
      }
    }
  }

  deliver_fn deliver;
  std::atomic<bool> done{false};
};

responder::responder(deliver_fn deliver)
    : state_(std::make_shared<state>(std::move(deliver))) {}

void responder::operator()(response r) const {
  if (!state_ || state_->done.exchange(true)) {
    // Dropped, but a stream answer's close hook still runs: its owner may hold something for it.
    if (r.stream && r.stream->closed)
      r.stream->closed();
    return;
  }
  if (state_->deliver)
    state_->deliver(std::move(r));
}

bool responder::answered() const {
  return !state_ || state_->done.load();
}

} // namespace parley::http
