#pragma once
// WhatsApp Cloud API webhook bodies (POST /webhooks/whatsapp) turned into typed inbound messages,
// status events and everything else, with no I/O. The body has passed the signature check but is
// still untrusted: parse_webhook never throws and never crashes on any input (it is fuzzed).
//
// Meta's envelope: {"object":"whatsapp_business_account","entry":[{"id","changes":[{"field",
// "value":{...}}]}]}. A change whose field is "messages" may carry value.messages (customers
// writing), value.statuses (what happened to our outbound messages) and value.errors; every other
// field (account_update, calls, smb_message_echoes, message_template_*, user_preferences...) is
// passed through as an other_change.
//
// ---------------------------------------------------------------------------------------------
// Normalised content model (inbound_message::content): always an object with a "kind".
// Optional keys ("?") are present only when Meta sent them with the expected JSON type; keys
// without "?" are always present ("" / null / [] when Meta left them out).
//
//   text         {"kind":"text","body"}
//   image, video, audio, document, sticker
//                {"kind":<type>,"media_id","mime_type","sha256","caption"?,"filename"?,
//                 "voice"? (audio),"animated"? (sticker),"url"? (when Meta includes one)}
//   location     {"kind":"location","latitude","longitude","name"?,"address"?,"url"?}
//                (latitude/longitude are numbers, or null when missing)
//   contacts     {"kind":"contacts","contacts":[...as sent...]}
//   interactive  button_reply          -> {"kind":"button_reply","id","title"}
//                list_reply            -> {"kind":"list_reply","id","title","description"?}
//                nfm_reply (Flows)     -> {"kind":"flow_reply","name"?,"body"?,"response_json"}
//                                         response_json: the parsed object when Meta's string is
//                                         JSON, else the value as sent
//                call_permission_reply -> {"kind":"call_permission_reply", ...its fields as sent}
//                any other subtype     -> {"kind":"interactive","interactive":<as sent or null>}
//   button       (template quick reply) {"kind":"button","payload","text"}
//   reaction     {"kind":"reaction","message_id","emoji","removed"}
//                (removed is true when the emoji is "" or missing: the customer took it back)
//   order        {"kind":"order","catalog_id","text"?,"product_items":[...as sent...]}
//   system       {"kind":"system","body","system_type","new_wa_id"?,"customer"?,"identity"?}
//                (new_wa_id from system.wa_id or system.new_wa_id; identity from the message)
//   unsupported, unknown
//                {"kind":"unsupported","errors"?:[...],"unsupported"?:{...as sent...}}
//   edit         {"kind":"edit","original_message_id"?,"message"?:{...as sent...},
//                 "content"?:<this model applied to the edited message>}
//   request_welcome, revoke and any type Meta adds later
//                {"kind":<type>, ...the fields of message[<type>] as sent} (when message[<type>]
//                is an object; a non-object value is kept under <type>). A new type is never a
//                reason to reject a message.
// "kind" is always set by Parley and cannot be overridden by a field Meta sends.
//
// Context (inbound_message::context), null when the message has none:
//   {"forwarded":bool,"frequently_forwarded":bool,"from"?,"message_id"?,"referred_product"?}
//   (message_id is Meta's context.id: the message being replied to)
// ---------------------------------------------------------------------------------------------
//
// Identifiers: with WhatsApp usernames Meta may withhold a customer's phone number and send only
// a business-scoped user id (BSUID, "US.1349..."). wa_id / recipient_id then carry the BSUID, so
// a conversation can always be keyed; user_id / recipient_user_id carry the BSUID whenever sent.
//
// Timestamps: Meta sends decimal strings ("1697043223"), sometimes numbers. Missing or unusable
// (not decimal, negative, beyond int64) -> 0, which is not an error; callers substitute the time
// they received the webhook.
//
// Malformed items inside an otherwise valid body are skipped and reported as other_change:
//   field "invalid_message" / "invalid_status" / "invalid_change": value {"reason", and the
//     offending "message" / "status" / "change" as sent}
//   field "other_status": a statuses[] entry whose "type" is not "message" (e.g. payments),
//     value = the entry as sent
//   (a change whose own field starts with "invalid_" or is "other_status" is reported as
//   invalid_change too: those names belong to these reports)
// so nothing is silently dropped.
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "domain/message_status.hpp"

namespace parley::domain {

/// One message a customer sent to one of our numbers.
struct inbound_message {
  std::string phone_number_id;       ///< value.metadata.phone_number_id ("" when absent)
  std::string display_phone_number;  ///< value.metadata.display_phone_number
  std::string wa_id;                 ///< messages[].from (the customer); the BSUID if no phone
  std::string user_id;               ///< BSUID: messages[].from_user_id or the contact's user_id
  std::string profile_name;          ///< value.contacts[] entry matching the sender (may be "")
  std::string wamid;                 ///< messages[].id, never empty
  int64_t timestamp = 0;             ///< messages[].timestamp, Unix seconds (0 = unknown)
  std::string type;                  ///< messages[].type exactly as Meta sent it, never empty
  nlohmann::json content;            ///< the normalised content model (see above)
  nlohmann::json context = nullptr;  ///< reply/forward context (see above) or null
  nlohmann::json referral = nullptr; ///< click-to-WhatsApp ad referral as sent, or null
  /// messages[].errors (unsupported messages), else the change's value.errors when Meta put the
  /// explanation there (it does for interactive messages it cannot render), else null.
  nlohmann::json errors = nullptr;
  nlohmann::json raw; ///< the original message object, verbatim
};

/// What happened to one of our outbound messages.
struct status_event {
  std::string phone_number_id; ///< value.metadata.phone_number_id ("" when absent)
  std::string wamid;           ///< statuses[].id, never empty
  /// statuses[].recipient_id (customer wa_id; a group id for group messages), else the BSUID.
  std::string recipient_id;
  std::string recipient_user_id;                ///< statuses[].recipient_user_id (BSUID) or ""
  message_status status = message_status::sent; ///< sent|delivered|read|played|failed|deleted
  std::string status_text;                      ///< statuses[].status as Meta sent it
  int64_t timestamp = 0;                        ///< Unix seconds (0 = unknown)
  std::optional<int> error_code;                ///< errors[0].code (failed messages)
  std::string error_title;                      ///< errors[0].title, else errors[0].message
  nlohmann::json errors = nullptr;              ///< statuses[].errors as sent, or null
  nlohmann::json conversation = nullptr;        ///< statuses[].conversation as sent, or null
  nlohmann::json pricing = nullptr;             ///< statuses[].pricing as sent, or null
  nlohmann::json raw;                           ///< the original status object, verbatim
};

/// Any change that is neither an inbound message nor a message status: other webhook fields,
/// "messages" changes carrying neither messages nor statuses, and the malformed items listed in
/// the header comment.
struct other_change {
  std::string field;           ///< change.field, or invalid_message/invalid_status/...
  std::string phone_number_id; ///< value.metadata.phone_number_id when present, else ""
  nlohmann::json value;        ///< change.value as sent (or the report described above)
};

/// Everything one webhook body carried, in body order within each list.
struct webhook_batch {
  std::vector<inbound_message> messages;
  std::vector<status_event> statuses;
  std::vector<other_change> others;
  /// Every distinct non-empty phone_number_id seen, in order of first appearance (routing).
  std::vector<std::string> phone_number_ids;
};

/// Why a body is not a WhatsApp webhook at all (not JSON, not an object, wrong "object", no
/// "entry" array, nested absurdly deep). Human-readable, names the offending path.
struct webhook_error {
  std::string reason;
};

using webhook_result = std::variant<webhook_batch, webhook_error>;

/// Nesting deeper than this is refused before (or instead of) being walked: Meta's payloads are
/// about 8 levels deep, and recursive copies of hostile nesting could exhaust the stack.
constexpr size_t max_webhook_depth = 64;

/// Parses a raw webhook body. Never throws, never crashes. Not JSON, not an object, "object" !=
/// "whatsapp_business_account" or no "entry" array -> webhook_error. Malformed messages, statuses
/// and changes inside an otherwise valid body are skipped and reported in `others`.
webhook_result parse_webhook(std::string_view body);

namespace detail {
webhook_result parse_webhook_doc(const nlohmann::json& doc);
webhook_result parse_webhook_doc(nlohmann::json&& doc);
} // namespace detail

/// Same, for a document the caller has already parsed. Pass an rvalue to let the parser move
/// subtrees out instead of copying them. (A constrained template rather than plain overloads, so
/// that a std::string or a string literal is not ambiguous between body and document.)
template <class Json>
requires std::same_as<std::remove_cvref_t<Json>, nlohmann::json>
    webhook_result parse_webhook(Json&& doc) {
  return detail::parse_webhook_doc(std::forward<Json>(doc));
}

} // namespace parley::domain
