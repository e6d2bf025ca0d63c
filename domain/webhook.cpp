#include "domain/webhook.hpp"

#include "domain/json_depth.hpp"
#include "domain/json_fast_parse.hpp"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>

namespace parley::domain {

namespace {

using json = nlohmann::json;

// ---- small accessors that never throw ---------------------------------------------------------

const json* member(const json& obj, std::string_view key) {
  if (!obj.is_object())
    return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

json* member(json& obj, std::string_view key) {
  if (!obj.is_object())
    return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// The string at obj[key], or "" when absent or not a string.
std::string_view str(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v != nullptr && v->is_string() ? std::string_view{v->get_ref<const std::string&>()}
                                        : std::string_view{};
}

const json* string_member(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v != nullptr && v->is_string() ? v : nullptr;
}

// out[out_key] = obj[key] when it has the expected type: optional keys of the content model.
void copy_if_string(json& out, const char* out_key, const json& obj, std::string_view key) {
  if (const json* v = string_member(obj, key))
    out[out_key] = *v;
}

void copy_if_bool(json& out, const char* out_key, const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  if (v != nullptr && v->is_boolean())
    out[out_key] = *v;
}

void copy_if_present(json& out, const char* out_key, const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  if (v != nullptr && !v->is_null())
    out[out_key] = *v;
}

bool flag(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v != nullptr && v->is_boolean() && v->get<bool>();
}

// Meta's timestamps are decimal strings, occasionally numbers. Anything unusable is 0 ("unknown"),
// never an error: a message without a usable time is still a message.
int64_t parse_timestamp(const json* t) {
  if (t == nullptr)
    return 0;
  if (t->is_string()) {
    const auto& s = t->get_ref<const std::string&>();
    if (s.empty() || s.size() > 19)
      return 0;
    int64_t v = 0;
    for (char ch : s) {
      if (ch < '0' || ch > '9')
        return 0;
      const int digit = ch - '0';
      if (v > (std::numeric_limits<int64_t>::max() - digit) / 10)
        return 0;
      v = v * 10 + digit;
    }
    return v;
  }
  if (t->is_number_unsigned()) {
    const auto v = t->get<uint64_t>();
    return v <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? static_cast<int64_t>(v)
                                                                           : 0;
  }
  if (t->is_number_integer()) {
    const auto v = t->get<int64_t>();
    return v >= 0 ? v : 0;
  }
  if (t->is_number_float()) {
    const auto v = t->get<double>();
    // 9.2e18 is below INT64_MAX with margin for rounding of the double.
    return std::isfinite(v) && v >= 0 && v < 9.2e18 ? static_cast<int64_t>(v) : 0;
  }
  return 0;
}

std::optional<int> int_value(const json* v) {
  if (v == nullptr)
    return std::nullopt;
  if (v->is_number_unsigned()) {
    const auto u = v->get<uint64_t>();
    if (u <= static_cast<uint64_t>(std::numeric_limits<int>::max()))
      return static_cast<int>(u);
  } else if (v->is_number_integer()) {
    const auto i = v->get<int64_t>();
    if (i >= std::numeric_limits<int>::min() && i <= std::numeric_limits<int>::max())
      return static_cast<int>(i);
  }
  return std::nullopt;
}

// ---- content model ----------------------------------------------------------------------------

bool is_media_type(std::string_view type) {
  return type == "image" || type == "video" || type == "audio" || type == "document" ||
         type == "sticker";
}

json make_kind(std::string_view kind) {
  json c = json::object();
  c["kind"] = kind;
  return c;
}

json media_content(std::string_view type, const json& media) {
  json c = make_kind(type);
  c["media_id"] = str(media, "id");
  c["mime_type"] = str(media, "mime_type");
  c["sha256"] = str(media, "sha256");
  copy_if_string(c, "caption", media, "caption");
  copy_if_string(c, "filename", media, "filename");
  copy_if_string(c, "url", media, "url");
  if (type == "audio")
    copy_if_bool(c, "voice", media, "voice");
  else if (type == "sticker")
    copy_if_bool(c, "animated", media, "animated");
  return c;
}

json number_or_null(const json& obj, std::string_view key) {
  const json* v = member(obj, key);
  return v != nullptr && v->is_number() ? *v : json(nullptr);
}

// Meta sends a Flow's answers as a JSON document inside a string.
json flow_response(const json* response) {
  if (response == nullptr)
    return nullptr;
  if (response->is_string()) {
    auto parsed = parse_json_bounded(response->get_ref<const std::string&>(), max_webhook_depth);
    if (auto* doc = std::get_if<json>(&parsed); doc != nullptr && doc->is_object())
      return std::move(*doc);
  }
  return *response;
}

// {"kind":kind, ...fields of obj}: "kind" is written last so a field cannot replace it.
json merged_content(std::string_view kind, const json* obj, std::string_view key_for_scalar) {
  json c = json::object();
  if (obj != nullptr) {
    if (obj->is_object()) {
      for (auto it = obj->begin(); it != obj->end(); ++it)
        c[it.key()] = it.value();
    } else if (!obj->is_null()) {
      c[std::string(key_for_scalar)] = *obj;
    }
  }
  c["kind"] = kind;
  return c;
}

json interactive_content(const json& msg) {
  const json* interactive = member(msg, "interactive");
  if (interactive == nullptr || !interactive->is_object()) {
    json c = make_kind("interactive");
    c["interactive"] = interactive != nullptr ? *interactive : json(nullptr);
    return c;
  }
  const std::string_view subtype = str(*interactive, "type");
  if (subtype == "button_reply" || subtype == "list_reply") {
    const json* reply = member(*interactive, subtype);
    const json& r = reply != nullptr ? *reply : *interactive;
    json c = make_kind(subtype);
    c["id"] = str(r, "id");
    c["title"] = str(r, "title");
    if (subtype == "list_reply")
      copy_if_string(c, "description", r, "description");
    return c;
  }
  if (subtype == "nfm_reply") {
    json c = make_kind("flow_reply");
    if (const json* reply = member(*interactive, "nfm_reply")) {
      copy_if_string(c, "name", *reply, "name");
      copy_if_string(c, "body", *reply, "body");
      c["response_json"] = flow_response(member(*reply, "response_json"));
    } else {
      c["response_json"] = nullptr;
    }
    return c;
  }
  if (subtype == "call_permission_reply")
    return merged_content("call_permission_reply", member(*interactive, subtype), subtype);
  json c = make_kind("interactive");
  c["interactive"] = *interactive;
  return c;
}

json normalise(const json& msg, std::string_view type, const json* change_errors, int depth);

json system_content(const json& msg) {
  json c = make_kind("system");
  const json* system = member(msg, "system");
  const json& s = system != nullptr ? *system : msg;
  c["body"] = str(s, "body");
  c["system_type"] = str(s, "type");
  if (const json* id = string_member(s, "wa_id"))
    c["new_wa_id"] = *id;
  else
    copy_if_string(c, "new_wa_id", s, "new_wa_id");
  copy_if_present(c, "customer", s, "customer");
  copy_if_present(c, "identity", msg, "identity");
  return c;
}

json unsupported_content(const json& msg, const json* change_errors) {
  json c = make_kind("unsupported");
  const json* errors = member(msg, "errors");
  if (errors == nullptr || errors->is_null())
    errors = change_errors;
  if (errors != nullptr && !errors->is_null())
    c["errors"] = *errors;
  copy_if_present(c, "unsupported", msg, "unsupported");
  return c;
}

json edit_content(const json& msg, const json* change_errors, int depth) {
  const json* edit = member(msg, "edit");
  json c = merged_content("edit", edit, "edit");
  // The edited message is an ordinary message body: show it in the same model. One level only;
  // Meta never nests edits, and recursion must stay bounded on hostile input.
  if (depth == 0 && edit != nullptr) {
    const json* inner = member(*edit, "message");
    if (inner != nullptr && inner->is_object()) {
      const std::string_view inner_type = str(*inner, "type");
      if (!inner_type.empty())
        c["content"] = normalise(*inner, inner_type, change_errors, depth + 1);
    }
  }
  return c;
}

json normalise(const json& msg, std::string_view type, const json* change_errors, int depth) {
  static const json empty_object = json::object();
  auto body_of = [&msg](std::string_view key) -> const json& {
    const json* v = member(msg, key);
    return v != nullptr && v->is_object() ? *v : empty_object;
  };
  if (type == "text") {
    json c = make_kind("text");
    c["body"] = str(body_of("text"), "body");
    return c;
  }
  if (is_media_type(type))
    return media_content(type, body_of(type));
  if (type == "location") {
    const json& loc = body_of("location");
    json c = make_kind("location");
    c["latitude"] = number_or_null(loc, "latitude");
    c["longitude"] = number_or_null(loc, "longitude");
    copy_if_string(c, "name", loc, "name");
    copy_if_string(c, "address", loc, "address");
    copy_if_string(c, "url", loc, "url");
    return c;
  }
  if (type == "contacts") {
    json c = make_kind("contacts");
    const json* contacts = member(msg, "contacts");
    c["contacts"] = contacts != nullptr && contacts->is_array() ? *contacts : json::array();
    return c;
  }
  if (type == "interactive")
    return interactive_content(msg);
  if (type == "button") {
    const json& button = body_of("button");
    json c = make_kind("button");
    c["payload"] = str(button, "payload");
    c["text"] = str(button, "text");
    return c;
  }
  if (type == "reaction") {
    const json& reaction = body_of("reaction");
    json c = make_kind("reaction");
    c["message_id"] = str(reaction, "message_id");
    const std::string_view emoji = str(reaction, "emoji");
    c["emoji"] = emoji;
    c["removed"] = emoji.empty();
    return c;
  }
  if (type == "order") {
    const json& order = body_of("order");
    json c = make_kind("order");
    c["catalog_id"] = str(order, "catalog_id");
    copy_if_string(c, "text", order, "text");
    const json* items = member(order, "product_items");
    c["product_items"] = items != nullptr && items->is_array() ? *items : json::array();
    return c;
  }
  if (type == "system")
    return system_content(msg);
  if (type == "unsupported" || type == "unknown")
    return unsupported_content(msg, change_errors);
  if (type == "edit")
    return edit_content(msg, change_errors, depth);
  return merged_content(type, member(msg, type), type);
}

json normalise_context(const json& msg) {
  const json* ctx = member(msg, "context");
  if (ctx == nullptr || !ctx->is_object())
    return nullptr;
  json c = json::object();
  c["forwarded"] = flag(*ctx, "forwarded");
  c["frequently_forwarded"] = flag(*ctx, "frequently_forwarded");
  copy_if_string(c, "from", *ctx, "from");
  copy_if_string(c, "message_id", *ctx, "id");
  copy_if_present(c, "referred_product", *ctx, "referred_product");
  return c;
}

// Meta's status strings; "pending" and "received" are Parley's own and never arrive from Meta.
std::optional<message_status> meta_status(std::string_view s) {
  auto st = parse_message_status(s);
  if (st == message_status::pending || st == message_status::received)
    return std::nullopt;
  return st;
}

// ---- the walk ---------------------------------------------------------------------------------

class walker {
public:
  webhook_batch batch;

  void entry(json& e, size_t ei) {
    if (!e.is_object())
      return invalid_entry(e, ei, "is not an object");
    json* changes = member(e, "changes");
    if (changes == nullptr)
      return invalid_entry(e, ei, ".changes missing");
    if (!changes->is_array())
      return invalid_entry(e, ei, ".changes is not an array");
    size_t ci = 0;
    for (auto& c : *changes)
      change(c, ei, ci++);
  }

private:
  static std::string entry_path(size_t ei) { return "entry[" + std::to_string(ei) + "]"; }

  static std::string change_path(size_t ei, size_t ci) {
    return entry_path(ei) + ".changes[" + std::to_string(ci) + "]";
  }

  void report(const char* field, std::string pnid, std::string reason, const char* what,
              json&& offending) {
    json value = json::object();
    value["reason"] = std::move(reason);
    value[what] = std::move(offending);
    batch.others.push_back(other_change{field, std::move(pnid), std::move(value)});
  }

  void invalid_entry(json& e, size_t ei, std::string_view problem) {
    std::string reason = entry_path(ei);
    if (problem.front() != '.')
      reason += ' ';
    reason += problem;
    report("invalid_change", "", std::move(reason), "entry", std::move(e));
  }

  void note_phone_number_id(const std::string& id) {
    if (id.empty())
      return;
    auto& ids = batch.phone_number_ids;
    if (std::find(ids.begin(), ids.end(), id) == ids.end())
      ids.push_back(id);
  }

  void change(json& c, size_t ei, size_t ci) {
    if (!c.is_object())
      return report("invalid_change", "", change_path(ei, ci) + " is not an object", "change",
                    std::move(c));
    const json* field = member(c, "field");
    if (field == nullptr || !field->is_string() || field->get_ref<const std::string&>().empty())
      return report("invalid_change", "", change_path(ei, ci) + ".field missing", "change",
                    std::move(c));
    json* value = member(c, "value");
    std::string pnid;
    std::string display;
    if (value != nullptr) {
      if (const json* metadata = member(*value, "metadata")) {
        pnid = str(*metadata, "phone_number_id");
        display = str(*metadata, "display_phone_number");
      }
    }
    note_phone_number_id(pnid);
    const auto& field_name = field->get_ref<const std::string&>();
    if (field_name.rfind("invalid_", 0) == 0 || field_name == "other_status")
      // Parley's own reports own these names (malformed items, which always carry a reason, and
      // statuses not about a message): a change Meta named so would be indistinguishable from
      // one. Kept whole, reported.
      return report("invalid_change", std::move(pnid),
                    change_path(ei, ci) + ".field '" + field_name +
                        "' is reserved for Parley's reports of malformed items",
                    "change", std::move(c));
    if (field_name != "messages") {
      batch.others.push_back(other_change{field_name, std::move(pnid),
                                          value != nullptr ? std::move(*value) : json(nullptr)});
      return;
    }
    if (value == nullptr || !value->is_object())
      return report("invalid_change", std::move(pnid),
                    change_path(ei, ci) +
                        (value == nullptr ? ".value missing" : ".value is not an object"),
                    "change", std::move(c));
    json* messages = member(*value, "messages");
    json* statuses = member(*value, "statuses");
    // Empty lists carry nothing: such a change (typically value-level errors) is passed on whole.
    auto carries = [](const json* list) {
      return list != nullptr && !(list->is_array() && list->empty());
    };
    if (!carries(messages) && !carries(statuses)) {
      batch.others.push_back(other_change{"messages", std::move(pnid), std::move(*value)});
      return;
    }
    if (messages != nullptr) {
      const json* contacts = member(*value, "contacts");
      const json* errors = member(*value, "errors");
      if (!messages->is_array()) {
        report("invalid_message", pnid, change_path(ei, ci) + ".value.messages is not an array",
               "message", std::move(*messages));
      } else {
        size_t mi = 0;
        for (auto& m : *messages)
          message(m, pnid, display, contacts, errors, ei, ci, mi++);
      }
    }
    if (statuses != nullptr) {
      if (!statuses->is_array()) {
        report("invalid_status", pnid, change_path(ei, ci) + ".value.statuses is not an array",
               "status", std::move(*statuses));
      } else {
        size_t si = 0;
        for (auto& s : *statuses)
          status(s, pnid, ei, ci, si++);
      }
    }
  }

  // Empty string when `v` is a non-empty string, else what is wrong with it.
  static const char* string_problem(const json* v) {
    if (v == nullptr)
      return " missing";
    if (!v->is_string())
      return " is not a string";
    if (v->get_ref<const std::string&>().empty())
      return " is empty";
    return "";
  }

  void invalid_message(json& m, const std::string& pnid, size_t ei, size_t ci, size_t mi,
                       std::string_view problem) {
    std::string reason = change_path(ei, ci) + ".value.messages[" + std::to_string(mi) + "]";
    reason += problem;
    report("invalid_message", pnid, std::move(reason), "message", std::move(m));
  }

  void message(json& m, const std::string& pnid, const std::string& display, const json* contacts,
               const json* change_errors, size_t ei, size_t ci, size_t mi) {
    if (!m.is_object())
      return invalid_message(m, pnid, ei, ci, mi, " is not an object");
    const json* id = member(m, "id");
    if (const char* problem = string_problem(id); *problem != '\0')
      return invalid_message(m, pnid, ei, ci, mi, std::string(".id") + problem);
    const json* type = member(m, "type");
    if (const char* problem = string_problem(type); *problem != '\0')
      return invalid_message(m, pnid, ei, ci, mi, std::string(".type") + problem);
    const std::string_view from = str(m, "from");
    const std::string_view from_user_id = str(m, "from_user_id");
    if (from.empty() && from_user_id.empty())
      return invalid_message(m, pnid, ei, ci, mi, ".from missing");

    inbound_message msg;
    msg.phone_number_id = pnid;
    msg.display_phone_number = display;
    msg.wa_id = from.empty() ? from_user_id : from;
    msg.user_id = from_user_id;
    msg.wamid = id->get_ref<const std::string&>();
    msg.timestamp = parse_timestamp(member(m, "timestamp"));
    msg.type = type->get_ref<const std::string&>();
    if (contacts != nullptr && contacts->is_array()) {
      for (const auto& contact : *contacts) {
        const std::string_view contact_wa_id = str(contact, "wa_id");
        const std::string_view contact_user_id = str(contact, "user_id");
        const bool same = (!from.empty() && contact_wa_id == from) ||
                          (!from_user_id.empty() && contact_user_id == from_user_id);
        if (!same)
          continue;
        if (const json* profile = member(contact, "profile"))
          msg.profile_name = str(*profile, "name");
        if (msg.user_id.empty())
          msg.user_id = contact_user_id;
        break;
      }
    }
    msg.content = normalise(m, msg.type, change_errors, 0);
    msg.context = normalise_context(m);
    if (const json* referral = member(m, "referral"); referral != nullptr)
      msg.referral = *referral;
    const json* errors = member(m, "errors");
    if (errors != nullptr && !errors->is_null())
      msg.errors = *errors;
    else if (change_errors != nullptr)
      msg.errors = *change_errors;
    msg.raw = std::move(m);
    batch.messages.push_back(std::move(msg));
  }

  void invalid_status(json& s, const std::string& pnid, size_t ei, size_t ci, size_t si,
                      std::string_view problem) {
    std::string reason = change_path(ei, ci) + ".value.statuses[" + std::to_string(si) + "]";
    reason += problem;
    report("invalid_status", pnid, std::move(reason), "status", std::move(s));
  }

  void status(json& s, const std::string& pnid, size_t ei, size_t ci, size_t si) {
    if (!s.is_object())
      return invalid_status(s, pnid, ei, ci, si, " is not an object");
    if (const json* kind = string_member(s, "type");
        kind != nullptr && kind->get_ref<const std::string&>() != "message") {
      batch.others.push_back(other_change{"other_status", pnid, std::move(s)});
      return;
    }
    const json* id = member(s, "id");
    if (const char* problem = string_problem(id); *problem != '\0')
      return invalid_status(s, pnid, ei, ci, si, std::string(".id") + problem);
    const json* status_text = member(s, "status");
    if (const char* problem = string_problem(status_text); *problem != '\0')
      return invalid_status(s, pnid, ei, ci, si, std::string(".status") + problem);
    const auto parsed = meta_status(status_text->get_ref<const std::string&>());
    if (!parsed)
      return invalid_status(s, pnid, ei, ci, si, ".status is not a known message status");

    status_event ev;
    ev.phone_number_id = pnid;
    ev.wamid = id->get_ref<const std::string&>();
    ev.recipient_user_id = str(s, "recipient_user_id");
    const std::string_view recipient = str(s, "recipient_id");
    ev.recipient_id = recipient.empty() ? ev.recipient_user_id : std::string(recipient);
    ev.status = *parsed;
    ev.status_text = status_text->get_ref<const std::string&>();
    ev.timestamp = parse_timestamp(member(s, "timestamp"));
    if (const json* errors = member(s, "errors"); errors != nullptr && !errors->is_null()) {
      if (errors->is_array() && !errors->empty()) {
        const json& first = errors->front();
        ev.error_code = int_value(member(first, "code"));
        ev.error_title = str(first, "title");
        if (ev.error_title.empty())
          ev.error_title = str(first, "message");
      }
      ev.errors = *errors;
    }
    if (const json* conversation = member(s, "conversation"))
      ev.conversation = *conversation;
    if (const json* pricing = member(s, "pricing"))
      ev.pricing = *pricing;
    ev.raw = std::move(s);
    batch.statuses.push_back(std::move(ev));
  }
};

// The walk over a document we own: subtrees are moved into the batch, not copied.
webhook_result parse_owned(json&& doc) {
  if (!doc.is_object())
    return webhook_error{"body is not a JSON object"};
  const json* object = member(doc, "object");
  if (object == nullptr)
    return webhook_error{"object missing"};
  if (!object->is_string() || object->get_ref<const std::string&>() != "whatsapp_business_account")
    return webhook_error{"object is not \"whatsapp_business_account\""};
  json* entries = member(doc, "entry");
  if (entries == nullptr)
    return webhook_error{"entry missing"};
  if (!entries->is_array())
    return webhook_error{"entry is not an array"};
  walker w;
  size_t ei = 0;
  for (auto& e : *entries)
    w.entry(e, ei++);
  return std::move(w.batch);
}

webhook_error failure(const std::exception& e) {
  // Unreachable on valid logic (every access is type-checked); bad_alloc is the realistic case.
  return webhook_error{std::string("webhook could not be parsed: ") + e.what()};
}

webhook_error too_deep() {
  return webhook_error{"body nests deeper than " + std::to_string(max_webhook_depth) + " levels"};
}

} // namespace

webhook_result parse_webhook(std::string_view body) {
  try {
    auto parsed = parse_json_bounded(body, max_webhook_depth);
    if (auto* refused = std::get_if<json_refusal>(&parsed))
      return refused->too_deep ? too_deep() : webhook_error{"body is not valid JSON"};
    return parse_owned(std::move(std::get<json>(parsed)));
  } catch (const std::exception& e) {
    return failure(e);
  }
}

namespace detail {

webhook_result parse_webhook_doc(const nlohmann::json& doc) {
  try {
    if (json_tree_nests_deeper_than(doc, max_webhook_depth))
      return too_deep();
    // Almost every subtree ends up in the batch anyway (raw messages, others' values), so one
    // copy up front costs about what selective copies would, and keeps a single walk.
    json copy = doc;
    return parse_owned(std::move(copy));
  } catch (const std::exception& e) {
    return failure(e);
  }
}

webhook_result parse_webhook_doc(nlohmann::json&& doc) {
  try {
    if (json_tree_nests_deeper_than(doc, max_webhook_depth))
      return too_deep();
    return parse_owned(std::move(doc));
  } catch (const std::exception& e) {
    return failure(e);
  }
}

} // namespace detail

} // namespace parley::domain
