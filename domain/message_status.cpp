#include "domain/message_status.hpp"

namespace parley::domain {

namespace {

// Position on the outbound path; received sits on no path and is handled before this is used.
constexpr int outbound_rank(message_status s) {
  switch (s) {
  case message_status::pending:
    return 0;
  case message_status::sent:
    return 1;
  case message_status::delivered:
    return 2;
  case message_status::read:
    return 3;
  case message_status::played:
    return 4;
  default:
    return -1;
  }
}

} // namespace

std::optional<message_status> parse_message_status(std::string_view s) {
  // Called for every status webhook: a switch on length keeps it to one or two compares.
  switch (s.size()) {
  case 4:
    if (s == "sent")
      return message_status::sent;
    if (s == "read")
      return message_status::read;
    break;
  case 6:
    if (s == "played")
      return message_status::played;
    if (s == "failed")
      return message_status::failed;
    break;
  case 7:
    if (s == "pending")
      return message_status::pending;
    if (s == "deleted")
      return message_status::deleted;
    break;
  case 8:
    if (s == "received")
      return message_status::received;
    break;
  case 9:
    if (s == "delivered")
      return message_status::delivered;
    break;
  default:
    break;
  }
  return std::nullopt;
}

std::string_view to_string(message_status s) {
  switch (s) {
  case message_status::pending:
    return "pending";
  case message_status::sent:
    return "sent";
  case message_status::delivered:
    return "delivered";
  case message_status::read:
    return "read";
  case message_status::played:
    return "played";
  case message_status::failed:
    return "failed";
  case message_status::received:
    return "received";
  case message_status::deleted:
    return "deleted";
  }
  // Only reachable through a value cast from outside the enum; still a printable name.
  return "unknown";
}

bool status_advances(message_status from, message_status to) {
  if (from == to || is_terminal(from))
    return false;
  if (is_terminal(to))
    return true;
  if (from == message_status::received || to == message_status::received)
    return false;
  return outbound_rank(to) > outbound_rank(from);
}

} // namespace parley::domain
