#include "runtime/errors.hpp"

#include <caf/atom.hpp>
#include <caf/make_message.hpp>
#include <caf/sec.hpp>

namespace parley {

namespace {
constexpr caf::atom_value parley_category = caf::atom("parley");
} // namespace

caf::error make_error(errc code, std::string message) {
  return caf::error{static_cast<uint8_t>(code), parley_category,
                    caf::make_message(std::move(message))};
}

errc code_of(const caf::error& err) {
  if (!err)
    return errc::none;
  if (err.category() == parley_category)
    return static_cast<errc>(err.code());
  if (err.category() == caf::atom("system")) {
    switch (static_cast<caf::sec>(err.code())) {
    case caf::sec::request_timeout:
      return errc::timeout;
    case caf::sec::request_receiver_down:
      return errc::timeout;
    default:
      return errc::internal;
    }
  }
  return errc::internal;
}

std::string message_of(const caf::error& err) {
  if (err.category() == parley_category && err.context().match_elements<std::string>())
    return err.context().get_as<std::string>(0);
  switch (code_of(err)) {
  case errc::timeout:
    return "a backend service did not answer in time; retry later";
  default:
    return "internal error";
  }
}

int http_status(errc code) {
  switch (code) {
  case errc::none:
    return 200;
  case errc::invalid_argument:
    return 400;
  case errc::unauthorized:
    return 401;
  case errc::forbidden:
    return 403;
  case errc::not_found:
    return 404;
  case errc::method_not_allowed:
    return 405;
  case errc::conflict:
    return 409;
  case errc::payload_too_large:
    return 413;
  case errc::unsupported_media:
    return 415;
  case errc::unprocessable:
    return 422;
  case errc::outside_window:
    return 422;
  case errc::rate_limited:
    return 429;
  case errc::internal:
    return 500;
  case errc::storage_unavailable:
    return 503;
  case errc::timeout:
    return 503;
  case errc::shutting_down:
    return 503;
  case errc::plan_limit_exceeded:
    return 403;
  }
  return 500;
}

std::string_view api_code(errc code) {
  switch (code) {
  case errc::none:
    return "ok";
  case errc::invalid_argument:
    return "invalid_request";
  case errc::unauthorized:
    return "unauthorized";
  case errc::forbidden:
    return "forbidden";
  case errc::not_found:
    return "not_found";
  case errc::method_not_allowed:
    return "method_not_allowed";
  case errc::conflict:
    return "conflict";
  case errc::payload_too_large:
    return "payload_too_large";
  case errc::unsupported_media:
    return "unsupported_media_type";
  case errc::unprocessable:
    return "unprocessable";
  case errc::outside_window:
    return "outside_window";
  case errc::rate_limited:
    return "rate_limited";
  case errc::internal:
    return "internal_error";
  case errc::storage_unavailable:
    return "storage_unavailable";
  case errc::timeout:
    return "upstream_timeout";
  case errc::shutting_down:
    return "shutting_down";
  case errc::plan_limit_exceeded:
    return "plan_limit_exceeded";
  }
  return "internal_error";
}

} // namespace parley
