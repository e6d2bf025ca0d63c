#pragma once
// The body of `POST /v1/messages` (API.md), validated against Meta's Cloud API send contract
// before anything is stored, and the Graph API payloads built from it. A request that passes
// here is one Meta can accept, as far as its shape goes; whether the recipient exists or the
// window is open is decided elsewhere.
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace parley::domain {

/// A rule of the request was broken. what() names the field (dotted path, e.g.
/// "interactive.action.buttons[1].reply.title") and says what to fix.
struct invalid_field : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

/// A validated, normalised outbound request.
struct outbound_request {
  std::optional<std::string> channel_id; ///< UUID, lower-cased; absent (or null) = tenant default
  /// wa_id digits without '+': 6..15 digits (E.164). Optional for "read" (validated when given,
  /// empty otherwise), required for every other type.
  std::string to;
  /// text|template|image|audio|video|document|sticker|location|interactive|reaction|read
  std::string type;
  nlohmann::json content; ///< the "<type>" object; unknown nested fields are passed through
  std::optional<std::string> client_message_id; ///< 1..128 printable ASCII
  /// Free-form messages need the 24-hour customer-service window; templates do not, and "read"
  /// is not a message.
  bool requires_window() const { return type != "template" && type != "read"; }
};

/// The types parse_outbound_request accepts, comma-separated (for messages and docs).
std::string_view supported_outbound_types();

/// Validates `body` (throws invalid_field on the first broken rule). Top-level fields: channel_id,
/// to, type, the type's object, client_message_id; anything else is refused by name. JSON null
/// counts as absent for the optional channel_id and client_message_id. Lengths are counted in
/// Unicode code points.
outbound_request parse_outbound_request(const nlohmann::json& body);

/// {"messaging_product":"whatsapp","recipient_type":"individual","to":...,"type":...,
///  "<type>":content}. For "reaction" the caller first replaces content.message_id with the
/// wamid it resolved. For "read" this returns graph_read_payload(content.message_id).
nlohmann::json graph_message_payload(const outbound_request& r);

/// {"messaging_product":"whatsapp","status":"read","message_id":wamid}: marks an inbound message
/// as read (the same messages endpoint).
nlohmann::json graph_read_payload(std::string_view wamid);

} // namespace parley::domain
