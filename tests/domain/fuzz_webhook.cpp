// libFuzzer target: parse_webhook must accept any bytes without crashing or throwing, the body and
// document entry points must agree, the fast JSON scan must build what nlohmann's parser builds,
// and whatever it returns must keep the promises the header makes (ids non-empty, content typed,
// everything serialisable). Also linked into test_domain, where the replay test drives it over the
// fixtures with the normal compiler.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

#include "domain/json_depth.hpp"
#include "domain/json_fast_parse.hpp"
#include "domain/message_status.hpp"
#include "domain/webhook.hpp"

namespace {

using nlohmann::json;
using namespace parley::domain;

void check(bool ok) {
  if (!ok)
    std::abort();
}

bool is_too_deep(const webhook_result& r) {
  const auto* err = std::get_if<webhook_error>(&r);
  return err != nullptr && err->reason.find("deeper") != std::string::npos;
}

// Everything in a batch ends up in PostgreSQL as JSON text: dump() must not throw.
void check_serialisable(const json& j) {
  const std::string text = j.dump();
  check(!text.empty());
}

void check_batch(const webhook_batch& b) {
  const auto& ids = b.phone_number_ids;
  for (size_t i = 0; i < ids.size(); ++i) {
    check(!ids[i].empty());
    check(std::count(ids.begin(), ids.end(), ids[i]) == 1);
  }
  auto known_id = [&ids](const std::string& id) {
    return id.empty() || std::find(ids.begin(), ids.end(), id) != ids.end();
  };
  for (const auto& m : b.messages) {
    check(!m.wamid.empty() && !m.type.empty() && !m.wa_id.empty());
    check(m.timestamp >= 0);
    check(known_id(m.phone_number_id));
    check(m.content.is_object());
    check(m.content.contains("kind") && m.content["kind"].is_string());
    check(m.context.is_null() || m.context.is_object());
    check(m.raw.is_object());
    check_serialisable(m.content);
    check_serialisable(m.context);
    check_serialisable(m.referral);
    check_serialisable(m.errors);
    check_serialisable(m.raw);
  }
  for (const auto& s : b.statuses) {
    check(!s.wamid.empty());
    check(s.timestamp >= 0);
    check(known_id(s.phone_number_id));
    const auto parsed = parse_message_status(s.status_text);
    check(parsed.has_value() && *parsed == s.status);
    check(parse_message_status(to_string(s.status)) == s.status);
    check(!status_advances(s.status, s.status));
    check(s.raw.is_object());
    check_serialisable(s.errors);
    check_serialisable(s.conversation);
    check_serialisable(s.pricing);
    check_serialisable(s.raw);
  }
  for (const auto& o : b.others) {
    check(!o.field.empty());
    check(known_id(o.phone_number_id));
    if (o.field.rfind("invalid_", 0) == 0)
      check(o.value.is_object() && o.value.contains("reason") && o.value["reason"].is_string());
    check_serialisable(o.value);
  }
}

size_t item_count(const webhook_batch& b) {
  return b.messages.size() + b.statuses.size() + b.others.size();
}

// False when the body was refused as too deeply nested (nothing more may be done with it:
// nlohmann's dump and copies recurse).
bool run_one(std::string_view body) {
  const webhook_result from_text = parse_webhook(body);
  if (const auto* b = std::get_if<webhook_batch>(&from_text))
    check_batch(*b);
  else
    check(!std::get<webhook_error>(from_text).reason.empty());
  if (is_too_deep(from_text))
    return false;

  // The document overloads must reach the same verdict on the same JSON.
  json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  // The fast scan accepts nothing nlohmann refuses, and builds the same document.
  const auto fast = parse_json_fast(body, max_webhook_depth);
  check(!fast || (!doc.is_discarded() && *fast == doc));
  check(!fast || !json_text_nests_deeper_than(body, max_webhook_depth));
  if (doc.is_discarded()) {
    check(std::holds_alternative<webhook_error>(from_text));
    return true;
  }
  const webhook_result from_doc = parse_webhook(doc);
  check(from_doc.index() == from_text.index());
  if (const auto* b = std::get_if<webhook_batch>(&from_doc)) {
    const auto& t = std::get<webhook_batch>(from_text);
    check(b->messages.size() == t.messages.size());
    check(b->statuses.size() == t.statuses.size());
    check(b->others.size() == t.others.size());
    check(b->phone_number_ids == t.phone_number_ids);
    check(item_count(*b) == item_count(t));
  }
  const webhook_result moved = parse_webhook(std::move(doc));
  check(moved.index() == from_text.index());
  return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  // A fixture file ({"case name": webhook body, ...}) seeds the corpus as it is: each body in it
  // is parsed on its own too.
  if (run_one(body) && size < 1'000'000) {
    json doc = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
    if (doc.is_object() && !doc.contains("object")) {
      for (const auto& [name, value] : doc.items())
        if (value.is_object() && value.contains("object"))
          run_one(value.dump());
    }
  }
  return 0;
}
