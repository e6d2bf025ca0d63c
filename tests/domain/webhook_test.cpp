#include "domain/webhook.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include <gtest/gtest.h>

// The libFuzzer entry point (fuzz_webhook.cpp), linked in so the harness runs in normal CI too.
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

using nlohmann::json;
using namespace parley::domain;

namespace {

namespace fs = std::filesystem;

fs::path fixtures_dir() {
  return fs::path(PARLEY_PYWA_FIXTURES);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// Every fixture file: {"case name": webhook body}.
std::map<std::string, json> fixture_file(const std::string& name) {
  const auto path = fixtures_dir() / name;
  const std::string text = read_file(path);
  if (text.empty())
    throw std::runtime_error("fixture missing or empty: " + path.string());
  std::map<std::string, json> out;
  const json all = json::parse(text);
  for (auto& [k, v] : all.items())
    out.emplace(k, v);
  return out;
}

json fixture(const std::string& file, const std::string& name) {
  auto all = fixture_file(file);
  auto it = all.find(name);
  if (it == all.end())
    throw std::runtime_error("no case " + name + " in " + file);
  return it->second;
}

webhook_batch batch_of(const webhook_result& r) {
  if (const auto* err = std::get_if<webhook_error>(&r))
    ADD_FAILURE() << "unexpected webhook_error: " << err->reason;
  return std::holds_alternative<webhook_batch>(r) ? std::get<webhook_batch>(r) : webhook_batch{};
}

// Parses through the text entry point, as the HTTP edge will.
webhook_batch parse_ok(const json& body) {
  return batch_of(parse_webhook(body.dump()));
}

inbound_message only_message(const std::string& file, const std::string& name) {
  auto b = parse_ok(fixture(file, name));
  EXPECT_EQ(b.messages.size(), 1u) << file << "/" << name;
  EXPECT_TRUE(b.statuses.empty());
  EXPECT_TRUE(b.others.empty());
  return b.messages.empty() ? inbound_message{} : b.messages.front();
}

status_event only_status(const std::string& name) {
  auto b = parse_ok(fixture("message_status.json", name));
  EXPECT_EQ(b.statuses.size(), 1u) << name;
  EXPECT_TRUE(b.messages.empty());
  EXPECT_TRUE(b.others.empty());
  return b.statuses.empty() ? status_event{} : b.statuses.front();
}

std::string error_of(std::string_view body) {
  auto r = parse_webhook(body);
  if (const auto* err = std::get_if<webhook_error>(&r))
    return err->reason;
  ADD_FAILURE() << "expected an error for: " << body.substr(0, 200);
  return {};
}

// A minimal valid body with one "messages" change carrying `value_extra` merged into its value.
json envelope(json value_extra, std::string field = "messages") {
  json value = {
      {"messaging_product", "whatsapp"},
      {"metadata", {{"display_phone_number", "15550001111"}, {"phone_number_id", "PNID1"}}}};
  for (auto& [k, v] : value_extra.items())
    value[k] = v;
  return {{"object", "whatsapp_business_account"},
          {"entry", {{{"id", "WABA1"}, {"changes", {{{"field", field}, {"value", value}}}}}}}};
}

json text_message(const std::string& id, const std::string& from = "4915112345678") {
  return {{"from", from},
          {"id", id},
          {"timestamp", "1700000000"},
          {"type", "text"},
          {"text", {{"body", "hi " + id}}}};
}

} // namespace

// ---- the 77 real payloads ---------------------------------------------------------------------

TEST(webhook_fixtures, every_payload_parses_with_the_documented_totals) {
  ASSERT_TRUE(fs::is_directory(fixtures_dir())) << "fixtures not found at " << fixtures_dir()
                                                << " (configure with -DPARLEY_PYWA_FIXTURES=...)";
  size_t files = 0, payloads = 0, messages = 0, statuses = 0, others = 0;
  for (const auto& de : fs::directory_iterator(fixtures_dir())) {
    if (de.path().extension() != ".json")
      continue;
    ++files;
    for (auto& [name, body] : fixture_file(de.path().filename().string())) {
      ++payloads;
      SCOPED_TRACE(de.path().filename().string() + "/" + name);
      const auto b = parse_ok(body);
      EXPECT_EQ(b.messages.size() + b.statuses.size() + b.others.size(), 1u)
          << "each fixture carries exactly one item";
      for (const auto& o : b.others)
        EXPECT_EQ(o.field.rfind("invalid_", 0), std::string::npos) << o.value.dump();
      // The document entry points agree with the text one.
      const auto from_doc = batch_of(parse_webhook(body));
      EXPECT_EQ(from_doc.messages.size(), b.messages.size());
      EXPECT_EQ(from_doc.statuses.size(), b.statuses.size());
      EXPECT_EQ(from_doc.others.size(), b.others.size());
      json copy = body;
      const auto moved = batch_of(parse_webhook(std::move(copy)));
      EXPECT_EQ(moved.messages.size(), b.messages.size());
      for (const auto& m : b.messages) {
        EXPECT_FALSE(m.wamid.empty());
        EXPECT_FALSE(m.wa_id.empty());
        EXPECT_GT(m.timestamp, 0);
        EXPECT_TRUE(m.content.is_object() && m.content["kind"].is_string());
      }
      for (const auto& s : b.statuses)
        EXPECT_GT(s.timestamp, 0);
      messages += b.messages.size();
      statuses += b.statuses.size();
      others += b.others.size();
    }
  }
  EXPECT_EQ(files, 21u);
  EXPECT_EQ(payloads, 77u);
  EXPECT_EQ(messages, 37u);
  EXPECT_EQ(statuses, 7u);
  EXPECT_EQ(others, 33u);
}

TEST(webhook_fixtures, text_message_and_envelope_fields) {
  const auto body = fixture("message.json", "text");
  const auto m = only_message("message.json", "text");
  EXPECT_EQ(m.phone_number_id,
            body["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"]);
  EXPECT_EQ(m.display_phone_number,
            body["entry"][0]["changes"][0]["value"]["metadata"]["display_phone_number"]);
  EXPECT_EQ(m.wa_id, "972987654321");
  EXPECT_EQ(m.user_id, "US.13491208655302741918") << "BSUID taken from the matching contact";
  EXPECT_EQ(m.profile_name, "Test Name");
  EXPECT_EQ(m.wamid, "wamid.xyzxyz");
  EXPECT_EQ(m.timestamp, 1697043223);
  EXPECT_EQ(m.type, "text");
  EXPECT_EQ(m.content, json({{"kind", "text"}, {"body", "Body Text"}}));
  EXPECT_TRUE(m.context.is_null());
  EXPECT_TRUE(m.referral.is_null());
  EXPECT_TRUE(m.errors.is_null());
  EXPECT_EQ(m.raw, body["entry"][0]["changes"][0]["value"]["messages"][0]) << "raw is verbatim";
}

TEST(webhook_fixtures, media_messages) {
  auto image = only_message("message.json", "image");
  EXPECT_EQ(image.content, json({{"kind", "image"},
                                 {"media_id", "65463453"},
                                 {"mime_type", "image/jpeg"},
                                 {"sha256", "4654+8g="}}));
  auto with_url = only_message("message.json", "media_with_url");
  EXPECT_EQ(with_url.content["url"].get<std::string>().rfind("https://lookaside.fbsbx.com/", 0),
            0u);

  auto video = only_message("message.json", "video");
  EXPECT_EQ(video.content["kind"], "video");
  EXPECT_EQ(video.content["media_id"], "765756756");
  EXPECT_EQ(video.content["caption"], "caption");
  EXPECT_EQ(video.content["mime_type"], "video/mp4");

  auto doc = only_message("message.json", "document");
  EXPECT_EQ(doc.content["kind"], "document");
  EXPECT_EQ(doc.content["filename"], "filename.pdf");
  EXPECT_EQ(doc.content["caption"], "caption");
  EXPECT_EQ(doc.content["media_id"], "1234567890987654321");

  auto audio = only_message("message.json", "audio");
  EXPECT_EQ(audio.content["kind"], "audio");
  EXPECT_EQ(audio.content["voice"], false);
  EXPECT_FALSE(audio.content.contains("caption"));
  EXPECT_EQ(only_message("message.json", "voice").content["voice"], true);

  auto sticker = only_message("message.json", "static_sticker");
  EXPECT_EQ(sticker.content["kind"], "sticker");
  EXPECT_EQ(sticker.content["mime_type"], "image/webp");
  EXPECT_EQ(sticker.content["animated"], false);
  EXPECT_EQ(only_message("message.json", "animated_sticker").content["animated"], true);
  EXPECT_FALSE(sticker.content.contains("voice"));
}

TEST(webhook_fixtures, locations) {
  auto current = only_message("message.json", "current_location");
  EXPECT_EQ(current.content,
            json({{"kind", "location"}, {"latitude", 12.25089}, {"longitude", 43.90539}}));
  auto chosen = only_message("message.json", "chosen_location");
  EXPECT_DOUBLE_EQ(chosen.content["latitude"].get<double>(), 37.4611978);
  EXPECT_DOUBLE_EQ(chosen.content["longitude"].get<double>(), -122.2164385);
  EXPECT_EQ(chosen.content["name"], "Facebook HQ");
  EXPECT_EQ(chosen.content["address"], "1 Hacker Way, Menlo Park, CA 94025");
  EXPECT_EQ(chosen.content["url"], "https://maps.google.com/?cid=2000000000000000000");
}

TEST(webhook_fixtures, shared_contacts) {
  auto m = only_message("message.json", "contacts");
  EXPECT_EQ(m.content["kind"], "contacts");
  ASSERT_EQ(m.content["contacts"].size(), 3u);
  EXPECT_EQ(m.content["contacts"][0]["name"]["formatted_name"], "Chandler Bing");
  EXPECT_EQ(m.content["contacts"][2]["phones"][0]["type"], "WORK");
  EXPECT_EQ(m.profile_name, "Test Name") << "value.contacts (the sender) is not message.contacts";
}

TEST(webhook_fixtures, interactive_replies_and_template_buttons) {
  auto button = only_message("callback_button.json", "button");
  EXPECT_EQ(button.type, "interactive");
  EXPECT_EQ(button.content,
            json({{"kind", "button_reply"}, {"id", "callback_data"}, {"title", "title"}}));

  auto quick = only_message("callback_button.json", "quick_reply");
  EXPECT_EQ(quick.type, "button");
  EXPECT_EQ(quick.content,
            json({{"kind", "button"}, {"payload", "callback_data"}, {"text", "title"}}));
  EXPECT_EQ(quick.context["message_id"], "wamid.xyzxyz==");
  auto without = only_message("callback_button.json", "quick_reply_without_context");
  EXPECT_TRUE(without.context.is_null());
  EXPECT_EQ(without.user_id, "US.13491208655302741918") << "from_user_id wins";

  auto list = only_message("callback_selection.json", "callback");
  EXPECT_EQ(list.content,
            json({{"kind", "list_reply"}, {"id", "callback_data"}, {"title", "title"}}));
  auto described = only_message("callback_selection.json", "description");
  EXPECT_EQ(described.content["description"], "description");
}

TEST(webhook_fixtures, flow_replies_carry_parsed_answers) {
  auto m = only_message("flow_completion.json", "completion");
  EXPECT_EQ(m.content["kind"], "flow_reply");
  EXPECT_EQ(m.content["name"], "flow");
  EXPECT_EQ(m.content["body"], "Sent");
  ASSERT_TRUE(m.content["response_json"].is_object());
  EXPECT_EQ(m.content["response_json"]["flow_token"], "AQAAAAACS5FpgQ_cAAAAAD0QI3s.");
  EXPECT_EQ(m.content["response_json"]["delivery_rating"], "4");
  auto without = only_message("flow_completion.json", "without_flow_token");
  EXPECT_FALSE(without.content["response_json"].contains("flow_token"));

  // A response that is not JSON is kept as Meta sent it.
  auto body = fixture("flow_completion.json", "completion");
  body["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]["nfm_reply"]
      ["response_json"] = "not {json";
  EXPECT_EQ(parse_ok(body).messages.at(0).content["response_json"], "not {json");
}

TEST(webhook_fixtures, call_permission_replies) {
  auto accept = only_message("call_permission_update.json", "accept");
  EXPECT_EQ(accept.content["kind"], "call_permission_reply");
  EXPECT_EQ(accept.content["response"], "accept");
  EXPECT_EQ(accept.content["expiration_timestamp"], 1753186982);
  EXPECT_EQ(accept.content["response_source"], "user_action");
  EXPECT_EQ(only_message("call_permission_update.json", "reject").content["response"], "reject");
}

TEST(webhook_fixtures, reactions_and_their_removal) {
  auto r = only_message("message.json", "reaction");
  EXPECT_EQ(r.content, json({{"kind", "reaction"},
                             {"message_id", "wamid.yzxyzx="},
                             {"emoji", "\xF0\x9F\x98\xAE"},
                             {"removed", false}}));
  for (const char* name : {"unreaction_empty", "unreaction_no_emoji"}) {
    auto removed = only_message("message.json", name);
    EXPECT_EQ(removed.content["emoji"], "") << name;
    EXPECT_EQ(removed.content["removed"], true) << name;
    EXPECT_EQ(removed.content["message_id"], "wamid.yzxyzx=") << name;
  }
}

TEST(webhook_fixtures, orders) {
  auto m = only_message("message.json", "order");
  EXPECT_EQ(m.content["kind"], "order");
  EXPECT_EQ(m.content["catalog_id"], "354160437058781");
  EXPECT_EQ(m.content["text"], "");
  ASSERT_EQ(m.content["product_items"].size(), 3u);
  EXPECT_EQ(m.content["product_items"][0], json({{"product_retailer_id", "HAMBURGER"},
                                                 {"quantity", 3},
                                                 {"item_price", 30},
                                                 {"currency", "ILS"}}));
}

TEST(webhook_fixtures, system_messages) {
  auto change = only_message("system.json", "phone_number_change");
  EXPECT_EQ(change.content["kind"], "system");
  EXPECT_EQ(change.content["body"], "User A changed from 972987654321 to 972912345678");
  EXPECT_EQ(change.content["system_type"], "user_changed_number");
  EXPECT_EQ(change.content["new_wa_id"], "972912345678");
  EXPECT_EQ(change.profile_name, "") << "no value.contacts in this payload";

  auto identity = only_message("system.json", "identity_change");
  EXPECT_EQ(identity.content["system_type"], "customer_identity_changed");
  EXPECT_EQ(identity.content["identity"]["hash"], "xyzxyz");
  EXPECT_FALSE(identity.content.contains("new_wa_id"));
  EXPECT_EQ(identity.profile_name, "User A");
}

TEST(webhook_fixtures, unsupported_messages_keep_meta_errors) {
  auto m = only_message("message.json", "unsupported");
  EXPECT_EQ(m.content["kind"], "unsupported");
  EXPECT_EQ(m.content["errors"][0]["code"], 131051);
  EXPECT_EQ(m.errors[0]["title"], "Message type unknown");
  EXPECT_FALSE(m.content.contains("unsupported"));
  auto typed = only_message("message.json", "unsupported_with_type");
  EXPECT_EQ(typed.content["unsupported"], json({{"type", "pool"}}));

  // Meta puts the explanation for an interactive message it could not render at value level.
  auto broken = only_message("message.json", "interactive_message_with_err");
  EXPECT_EQ(broken.content, json({{"kind", "interactive"}, {"interactive", nullptr}}));
  EXPECT_EQ(broken.errors[0]["code"], 131000);
  EXPECT_EQ(broken.context["message_id"], "wamid.gvwegfretge==");
}

TEST(webhook_fixtures, referral_reply_and_forward_context) {
  auto ad = only_message("message.json", "referral");
  EXPECT_EQ(ad.referral["source_id"], "ADID");
  EXPECT_EQ(ad.referral["ctwa_clid"], "CTWA_CLID");
  EXPECT_EQ(ad.content["body"], "BODY");
  EXPECT_EQ(ad.wamid, "wamid.ID");

  auto reply = only_message("message.json", "reply");
  EXPECT_EQ(reply.context, json({{"forwarded", false},
                                 {"frequently_forwarded", false},
                                 {"from", "972123456789"},
                                 {"message_id", "wamid.xyzxyz=="}}));
  EXPECT_EQ(reply.content["body"], "replied text");

  auto forwarded = only_message("message.json", "forwarded");
  EXPECT_EQ(forwarded.context, json({{"forwarded", true}, {"frequently_forwarded", false}}));
  auto many = only_message("message.json", "forwarded_many_times");
  EXPECT_EQ(many.context, json({{"forwarded", false}, {"frequently_forwarded", true}}));
}

TEST(webhook_fixtures, welcome_revoke_and_edit) {
  auto welcome = only_message("chat_opened.json", "chat_opened");
  EXPECT_EQ(welcome.type, "request_welcome");
  EXPECT_EQ(welcome.content, json({{"kind", "request_welcome"}}));

  auto revoke = only_message("deleted_message.json", "revoke");
  EXPECT_EQ(revoke.content,
            json({{"kind", "revoke"}, {"original_message_id", "<ORIGINAL_WHATSAPP_MESSAGE_ID>"}}));
  EXPECT_EQ(revoke.phone_number_id, "<BUSINESS_PHONE_NUMBER_ID>");

  auto edit = only_message("edited_message.json", "image");
  EXPECT_EQ(edit.content["kind"], "edit");
  EXPECT_EQ(edit.content["original_message_id"],
            "wamid.HBgLMTQxMjU1NTA4MjkVAgASGBQzQUNCNjk5RDUwNUZGMUZEM0VBRAA=");
  EXPECT_EQ(edit.content["content"]["kind"], "image");
  EXPECT_EQ(edit.content["content"]["caption"], "Updated image caption");
  EXPECT_EQ(edit.content["content"]["media_id"], "1234567890");
  EXPECT_EQ(edit.content["message"]["type"], "image") << "the edited message as sent";
}

TEST(webhook_fixtures, statuses) {
  auto sent = only_status("sent");
  EXPECT_EQ(sent.status, message_status::sent);
  EXPECT_EQ(sent.status_text, "sent");
  EXPECT_EQ(sent.wamid, "wamid.xyzxyz");
  EXPECT_EQ(sent.recipient_id, "972987654321");
  EXPECT_EQ(sent.timestamp, 1698266945);
  EXPECT_EQ(sent.conversation["id"], "7270432eae37498234f4444b35ffc5");
  EXPECT_EQ(sent.conversation["expiration_timestamp"], "1698339900");
  EXPECT_EQ(sent.pricing,
            json({{"billable", true}, {"pricing_model", "CBP"}, {"category", "service"}}));
  EXPECT_FALSE(sent.error_code.has_value());
  EXPECT_TRUE(sent.errors.is_null());
  EXPECT_FALSE(sent.phone_number_id.empty());

  EXPECT_EQ(only_status("delivered").status, message_status::delivered);
  EXPECT_EQ(only_status("read").status, message_status::read);
  EXPECT_EQ(only_status("played").status, message_status::played);

  auto failed = only_status("failed");
  EXPECT_EQ(failed.status, message_status::failed);
  EXPECT_EQ(failed.error_code, 130472);
  EXPECT_EQ(failed.error_title, "User's number is part of an experiment");
  EXPECT_EQ(failed.errors[0]["error_data"]["details"],
            "Failed to send message because this user's phone number is part of an experiment");
  EXPECT_TRUE(failed.conversation.is_null());
  EXPECT_TRUE(failed.pricing.is_null());

  auto tracked = only_status("with_tracker");
  EXPECT_EQ(tracked.raw["biz_opaque_callback_data"], "some data");

  auto group = only_status("group");
  EXPECT_EQ(group.recipient_id, "fowefinoewcnw");
  EXPECT_EQ(group.raw["recipient_type"], "group");
  EXPECT_EQ(group.status, message_status::read);
}

TEST(webhook_fixtures, other_fields_pass_through) {
  auto account = parse_ok(fixture("account_update.json", "account_restriction"));
  ASSERT_EQ(account.others.size(), 1u);
  EXPECT_EQ(account.others[0].field, "account_update");
  EXPECT_EQ(account.others[0].phone_number_id, "");
  EXPECT_EQ(account.others[0].value["event"], "ACCOUNT_RESTRICTION");
  EXPECT_TRUE(account.phone_number_ids.empty());

  // A call's status travels in statuses[] under field "calls": not a message status.
  auto call = parse_ok(fixture("call_status.json", "call_status"));
  ASSERT_EQ(call.others.size(), 1u);
  EXPECT_TRUE(call.statuses.empty());
  EXPECT_EQ(call.others[0].field, "calls");
  EXPECT_EQ(call.others[0].phone_number_id, "5483758353");
  EXPECT_EQ(call.phone_number_ids, std::vector<std::string>{"5483758353"});

  auto echo = parse_ok(fixture("outgoing_message.json", "text"));
  ASSERT_EQ(echo.others.size(), 1u);
  EXPECT_EQ(echo.others[0].field, "smb_message_echoes");
  EXPECT_EQ(echo.others[0].value["message_echoes"][0]["text"]["body"], "Test message");

  auto tmpl = parse_ok(fixture("template_status_update.json", "rejected"));
  ASSERT_EQ(tmpl.others.size(), 1u);
  EXPECT_EQ(tmpl.others[0].field, "message_template_status_update");
  EXPECT_EQ(tmpl.others[0].value["reason"], "INVALID_FORMAT");
}

// ---- combined and synthetic bodies ------------------------------------------------------------

TEST(webhook, multi_entry_multi_change_bodies) {
  // entry[0]: a text message, a failed status; entry[1]: an account update and an image; all from
  // real payloads, the second number made different.
  auto text = fixture("message.json", "text");
  auto failed = fixture("message_status.json", "failed");
  auto account = fixture("account_update.json", "account_deleted");
  auto image = fixture("message.json", "image");
  image["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"] = "SECOND";
  json body = {{"object", "whatsapp_business_account"}, {"entry", json::array()}};
  json e0 = text["entry"][0];
  e0["changes"].push_back(failed["entry"][0]["changes"][0]);
  json e1 = account["entry"][0];
  e1["changes"].push_back(image["entry"][0]["changes"][0]);
  body["entry"].push_back(e0);
  body["entry"].push_back(e1);

  auto b = parse_ok(body);
  ASSERT_EQ(b.messages.size(), 2u);
  ASSERT_EQ(b.statuses.size(), 1u);
  ASSERT_EQ(b.others.size(), 1u);
  EXPECT_EQ(b.messages[0].type, "text");
  EXPECT_EQ(b.messages[1].type, "image");
  EXPECT_EQ(b.messages[1].phone_number_id, "SECOND");
  EXPECT_EQ(b.statuses[0].error_code, 130472);
  EXPECT_EQ(b.others[0].field, "account_update");
  const std::string first = text["entry"][0]["changes"][0]["value"]["metadata"]["phone_number_id"];
  EXPECT_EQ(b.phone_number_ids, (std::vector<std::string>{first, "SECOND"}))
      << "distinct, in order of first appearance";
}

TEST(webhook, one_change_with_several_messages_and_statuses) {
  json statuses = json::array();
  for (const char* st : {"sent", "delivered", "read"})
    statuses.push_back({{"id", "wamid.OUT"},
                        {"status", st},
                        {"timestamp", 1700000001},
                        {"recipient_id", "4915112345678"}});
  auto body =
      envelope({{"contacts",
                 {{{"profile", {{"name", "Ann"}}}, {"wa_id", "4915112345678"}},
                  {{"profile", {{"name", "Bob"}}}, {"wa_id", "4915187654321"}}}},
                {"messages", {text_message("wamid.A"), text_message("wamid.B", "4915187654321")}},
                {"statuses", statuses}});
  auto b = parse_ok(body);
  ASSERT_EQ(b.messages.size(), 2u);
  EXPECT_EQ(b.messages[0].profile_name, "Ann");
  EXPECT_EQ(b.messages[1].profile_name, "Bob") << "profile matched by wa_id, not by position";
  EXPECT_EQ(b.messages[1].content["body"], "hi wamid.B");
  ASSERT_EQ(b.statuses.size(), 3u);
  EXPECT_EQ(b.statuses[2].status, message_status::read);
  EXPECT_EQ(b.statuses[0].timestamp, 1700000001) << "numeric timestamps are accepted";
  EXPECT_EQ(b.phone_number_ids, std::vector<std::string>{"PNID1"});
}

TEST(webhook, bodies_that_are_not_webhooks_are_errors) {
  EXPECT_NE(error_of("").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"object\":").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"a\":1}{}").find("not valid JSON"), std::string::npos);
  EXPECT_NE(error_of("{\"object\":\"whatsapp_business_account\",\"entry\":[\"\xff\"]}")
                .find("not valid JSON"),
            std::string::npos)
      << "invalid UTF-8 is refused, so nothing downstream has to dump it";
  for (const char* not_object : {"[]", "null", "42", "\"whatsapp_business_account\"", "true"})
    EXPECT_EQ(error_of(not_object), "body is not a JSON object") << not_object;
  EXPECT_EQ(error_of(R"({"entry":[]})"), "object missing");
  EXPECT_EQ(error_of(R"({"object":"page","entry":[]})"),
            "object is not \"whatsapp_business_account\"");
  EXPECT_EQ(error_of(R"({"object":7,"entry":[]})"), "object is not \"whatsapp_business_account\"");
  EXPECT_EQ(error_of(R"({"object":"whatsapp_business_account"})"), "entry missing");
  EXPECT_EQ(error_of(R"({"object":"whatsapp_business_account","entry":{}})"),
            "entry is not an array");

  auto empty = parse_webhook(R"({"object":"whatsapp_business_account","entry":[]})");
  ASSERT_TRUE(std::holds_alternative<webhook_batch>(empty)) << "no entries: valid and empty";
  EXPECT_TRUE(std::get<webhook_batch>(empty).others.empty());
}

// Regression (found by fuzz_webhook): a change whose field Meta names "invalid_..." was passed
// through under that name, indistinguishable from Parley's own reports of malformed items (which
// always carry a "reason"). Such a change is reported as invalid_change, kept whole.
TEST(webhook, a_field_named_like_parleys_reports_is_not_taken_for_one) {
  auto b = parse_ok(envelope({{"new_quality_score", "YELLOW"}}, "invalid_template_quality_update"));
  ASSERT_EQ(b.others.size(), 1u);
  EXPECT_EQ(b.others[0].field, "invalid_change");
  EXPECT_EQ(b.others[0].phone_number_id, "PNID1");
  ASSERT_TRUE(b.others[0].value["reason"].is_string());
  EXPECT_NE(b.others[0].value["reason"].get<std::string>().find("reserved"), std::string::npos);
  EXPECT_EQ(b.others[0].value["change"]["field"], "invalid_template_quality_update");
  EXPECT_EQ(b.others[0].value["change"]["value"]["new_quality_score"], "YELLOW");
  // Ordinary fields still pass through under their own name.
  auto ok =
      parse_ok(envelope({{"new_quality_score", "YELLOW"}}, "message_template_quality_update"));
  ASSERT_EQ(ok.others.size(), 1u);
  EXPECT_EQ(ok.others[0].field, "message_template_quality_update");
}

TEST(webhook, a_field_named_like_parleys_other_status_report_is_not_taken_for_one) {
  // "other_status" is what Parley calls a statuses[] entry that is not about a message: a change
  // Meta named so would be counted and handed on as if it were such an entry.
  auto b = parse_ok(envelope({{"id", "x"}}, "other_status"));
  ASSERT_EQ(b.others.size(), 1u);
  EXPECT_EQ(b.others[0].field, "invalid_change");
  ASSERT_TRUE(b.others[0].value["reason"].is_string());
  EXPECT_NE(b.others[0].value["reason"].get<std::string>().find("reserved"), std::string::npos);
  EXPECT_EQ(b.others[0].value["change"]["field"], "other_status");
}

TEST(webhook, malformed_messages_are_reported_not_dropped) {
  json no_id = text_message("x");
  no_id.erase("id");
  json numeric_id = text_message("x");
  numeric_id["id"] = 12;
  json empty_id = text_message("");
  json no_from = text_message("wamid.NOFROM");
  no_from.erase("from");
  json no_type = text_message("wamid.NOTYPE");
  no_type.erase("type");
  auto body = envelope({{"messages",
                         {no_id, text_message("wamid.GOOD"), numeric_id, empty_id, no_from, no_type,
                          "a string", nullptr}}});
  auto b = parse_ok(body);
  ASSERT_EQ(b.messages.size(), 1u);
  EXPECT_EQ(b.messages[0].wamid, "wamid.GOOD");
  ASSERT_EQ(b.others.size(), 7u);
  const std::string p = "entry[0].changes[0].value.messages";
  const std::vector<std::string> reasons = {p + "[0].id missing",      p + "[2].id is not a string",
                                            p + "[3].id is empty",     p + "[4].from missing",
                                            p + "[5].type missing",    p + "[6] is not an object",
                                            p + "[7] is not an object"};
  for (size_t i = 0; i < reasons.size(); ++i) {
    EXPECT_EQ(b.others[i].field, "invalid_message");
    EXPECT_EQ(b.others[i].phone_number_id, "PNID1");
    EXPECT_EQ(b.others[i].value["reason"], reasons[i]);
    EXPECT_TRUE(b.others[i].value.contains("message")) << "the offending message is kept";
  }
  EXPECT_EQ(b.others[0].value["message"]["text"]["body"], "hi x");

  auto not_array = parse_ok(envelope({{"messages", {{"id", "wamid.X"}}}}));
  ASSERT_EQ(not_array.others.size(), 1u);
  EXPECT_EQ(not_array.others[0].value["reason"],
            "entry[0].changes[0].value.messages is not an array");
}

TEST(webhook, malformed_and_unknown_statuses_are_reported) {
  auto status = [](json fields) {
    json s = {{"id", "wamid.S"},
              {"status", "delivered"},
              {"timestamp", "1700000000"},
              {"recipient_id", "4915112345678"}};
    for (auto& [k, v] : fields.items()) {
      if (v.is_null())
        s.erase(k);
      else
        s[k] = v;
    }
    return s;
  };
  auto body = envelope({{"statuses",
                         {status({{"id", nullptr}}), status({{"status", "exploded"}}),
                          status({{"status", 3}}), status({{"status", "pending"}}), status({}),
                          status({{"type", "payment"}, {"status", "captured"}}), 42}}});
  auto b = parse_ok(body);
  ASSERT_EQ(b.statuses.size(), 1u);
  EXPECT_EQ(b.statuses[0].status, message_status::delivered);
  ASSERT_EQ(b.others.size(), 6u);
  const std::string p = "entry[0].changes[0].value.statuses";
  EXPECT_EQ(b.others[0].value["reason"], p + "[0].id missing");
  EXPECT_EQ(b.others[1].value["reason"], p + "[1].status is not a known message status");
  EXPECT_EQ(b.others[1].value["status"]["status"], "exploded");
  EXPECT_EQ(b.others[2].value["reason"], p + "[2].status is not a string");
  EXPECT_EQ(b.others[3].value["reason"], p + "[3].status is not a known message status")
      << "pending is Parley's, never Meta's";
  EXPECT_EQ(b.others[4].field, "other_status");
  EXPECT_EQ(b.others[4].value["type"], "payment");
  EXPECT_EQ(b.others[5].value["reason"], p + "[6] is not an object");
  for (size_t i : {0, 1, 2, 3, 5})
    EXPECT_EQ(b.others[i].field, "invalid_status");
}

TEST(webhook, malformed_entries_and_changes_are_reported) {
  json body = {{"object", "whatsapp_business_account"},
               {"entry",
                {"garbage",
                 {{"id", "1"}},
                 {{"changes", {{"field", "x"}}}},
                 {{"changes",
                   {7,
                    {{"value", {}}},
                    {{"field", "messages"}},
                    {{"field", "messages"}, {"value", "str"}}}}}}}};
  auto b = parse_ok(body);
  EXPECT_TRUE(b.messages.empty());
  std::vector<std::string> reasons;
  for (const auto& o : b.others) {
    EXPECT_EQ(o.field, "invalid_change");
    reasons.push_back(o.value["reason"]);
  }
  EXPECT_EQ(reasons, (std::vector<std::string>{
                         "entry[0] is not an object", "entry[1].changes missing",
                         "entry[2].changes is not an array", "entry[3].changes[0] is not an object",
                         "entry[3].changes[1].field missing", "entry[3].changes[2].value missing",
                         "entry[3].changes[3].value is not an object"}));
}

TEST(webhook, messages_change_without_messages_or_statuses_is_an_other) {
  auto b =
      parse_ok(envelope({{"errors", {{{"code", 131000}, {"title", "Something went wrong"}}}}}));
  ASSERT_EQ(b.others.size(), 1u);
  EXPECT_EQ(b.others[0].field, "messages");
  EXPECT_EQ(b.others[0].phone_number_id, "PNID1");
  EXPECT_EQ(b.others[0].value["errors"][0]["code"], 131000);

  auto empty_lists = parse_ok(envelope({{"messages", json::array()},
                                        {"statuses", json::array()},
                                        {"errors", {{{"code", 131000}}}}}));
  ASSERT_EQ(empty_lists.others.size(), 1u) << "empty lists carry nothing; the errors are kept";
  EXPECT_EQ(empty_lists.others[0].field, "messages");
  EXPECT_TRUE(empty_lists.messages.empty());
}

TEST(webhook, new_message_types_are_never_rejected) {
  json poll = {{"from", "4915112345678"},
               {"id", "wamid.P"},
               {"type", "poll"},
               {"poll", {{"question", "Lunch?"}, {"kind", "not yours"}, {"options", {"a", "b"}}}}};
  json scalar = {{"from", "4915112345678"}, {"id", "wamid.Q"}, {"type", "mood"}, {"mood", "happy"}};
  json bare = {{"from", "4915112345678"}, {"id", "wamid.R"}, {"type", "hologram"}};
  auto b = parse_ok(envelope({{"messages", {poll, scalar, bare}}}));
  ASSERT_EQ(b.messages.size(), 3u);
  EXPECT_EQ(b.messages[0].content,
            json({{"kind", "poll"}, {"question", "Lunch?"}, {"options", {"a", "b"}}}))
      << "kind is Parley's and cannot be overridden";
  EXPECT_EQ(b.messages[1].content, json({{"kind", "mood"}, {"mood", "happy"}}));
  EXPECT_EQ(b.messages[2].content, json({{"kind", "hologram"}}));
  EXPECT_EQ(b.messages[2].timestamp, 0) << "missing timestamp is 0, not an error";
}

TEST(webhook, wrongly_typed_fields_degrade_to_defaults) {
  json m = {{"from", "4915112345678"}, {"id", "wamid.T"},   {"type", "text"},
            {"text", {{"body", 42}}},  {"context", "nope"}, {"timestamp", {1, 2}}};
  json loc = {{"from", "4915112345678"},
              {"id", "wamid.L"},
              {"type", "location"},
              {"location", {{"latitude", "12.5"}, {"name", 5}}}};
  json img = {{"from", "4915112345678"}, {"id", "wamid.I"}, {"type", "image"}, {"image", "x"}};
  json inter = {{"from", "4915112345678"},
                {"id", "wamid.N"},
                {"type", "interactive"},
                {"interactive", {{"type", "nfm_reply"}}}};
  auto b = parse_ok(envelope({{"messages", {m, loc, img, inter}}}));
  ASSERT_EQ(b.messages.size(), 4u);
  EXPECT_EQ(b.messages[0].content, json({{"kind", "text"}, {"body", ""}}));
  EXPECT_TRUE(b.messages[0].context.is_null());
  EXPECT_EQ(b.messages[0].timestamp, 0);
  EXPECT_EQ(b.messages[1].content,
            json({{"kind", "location"}, {"latitude", nullptr}, {"longitude", nullptr}}));
  EXPECT_EQ(b.messages[2].content,
            json({{"kind", "image"}, {"media_id", ""}, {"mime_type", ""}, {"sha256", ""}}));
  EXPECT_EQ(b.messages[3].content, json({{"kind", "flow_reply"}, {"response_json", nullptr}}));
}

TEST(webhook, business_scoped_user_ids_stand_in_for_withheld_phone_numbers) {
  json m = {
      {"from_user_id", "US.1349"}, {"id", "wamid.U"}, {"type", "text"}, {"text", {{"body", "hi"}}}};
  json s = {{"id", "wamid.OUT"}, {"status", "read"}, {"recipient_user_id", "US.1349"}};
  auto b =
      parse_ok(envelope({{"contacts", {{{"profile", {{"name", "Uma"}}}, {"user_id", "US.1349"}}}},
                         {"messages", {m}},
                         {"statuses", {s}}}));
  ASSERT_EQ(b.messages.size(), 1u);
  EXPECT_EQ(b.messages[0].wa_id, "US.1349");
  EXPECT_EQ(b.messages[0].user_id, "US.1349");
  EXPECT_EQ(b.messages[0].profile_name, "Uma");
  ASSERT_EQ(b.statuses.size(), 1u);
  EXPECT_EQ(b.statuses[0].recipient_id, "US.1349");
  EXPECT_EQ(b.statuses[0].recipient_user_id, "US.1349");
}

TEST(webhook, huge_and_odd_numbers) {
  auto ts = [](json t) {
    json m = text_message("wamid.H");
    m["timestamp"] = t;
    auto b = parse_ok(envelope({{"messages", {m}}}));
    return b.messages.empty() ? int64_t{-1} : b.messages[0].timestamp;
  };
  EXPECT_EQ(ts("1697043223"), 1697043223);
  EXPECT_EQ(ts(1697043223), 1697043223);
  EXPECT_EQ(ts(1697043223.9), 1697043223);
  EXPECT_EQ(ts("9223372036854775807"), INT64_MAX);
  EXPECT_EQ(ts("9223372036854775808"), 0) << "beyond int64";
  EXPECT_EQ(ts("99999999999999999999999"), 0);
  EXPECT_EQ(ts(std::numeric_limits<uint64_t>::max()), 0);
  EXPECT_EQ(ts(1e300), 0);
  EXPECT_EQ(ts(-5), 0);
  EXPECT_EQ(ts("-5"), 0);
  EXPECT_EQ(ts("12a"), 0);
  EXPECT_EQ(ts(""), 0);
  EXPECT_EQ(ts(nullptr), 0);

  auto code = [](json c) {
    json s = {{"id", "wamid.E"},
              {"status", "failed"},
              {"errors", {{{"code", c}, {"message", "from message"}}}}};
    auto b = parse_ok(envelope({{"statuses", {s}}}));
    EXPECT_EQ(b.statuses.at(0).error_title, "from message") << "title falls back to message";
    return b.statuses.at(0).error_code;
  };
  EXPECT_EQ(code(131026), 131026);
  EXPECT_EQ(code(99999999999LL), std::nullopt);
  EXPECT_EQ(code(-99999999999LL), std::nullopt);
  EXPECT_EQ(code("131026"), std::nullopt);
  EXPECT_EQ(code(1.5), std::nullopt);

  // Numbers far beyond double: whatever nlohmann decides, no crash and no throw.
  const std::string big = std::string("1") + std::string(400, '0');
  auto r = parse_webhook(R"({"object":"whatsapp_business_account","entry":[],"n":)" + big + "}");
  (void)r;
  auto r2 = parse_webhook(R"({"object":"whatsapp_business_account","entry":[],"n":1e999999})");
  (void)r2;
}

TEST(webhook, deeply_nested_garbage_is_refused_without_recursion) {
  const std::string deep(200'000, '[');
  EXPECT_NE(error_of(deep).find("deeper than 64"), std::string::npos);
  const std::string balanced = std::string(100'000, '{') + std::string(100'000, '}');
  EXPECT_NE(error_of(balanced).find("deeper"), std::string::npos);

  // Hostile nesting inside an otherwise valid message.
  auto nested_message = [](size_t depth) {
    std::string inner;
    for (size_t i = 0; i < depth; ++i)
      inner += "[";
    for (size_t i = 0; i < depth; ++i)
      inner += "]";
    return R"({"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages",)"
           R"("value":{"messages":[{"from":"1","id":"w","type":"x","x":)" +
           inner + "}]}}]}]}";
  };
  EXPECT_NE(error_of(nested_message(100'000)).find("deeper"), std::string::npos);
  auto shallow = parse_webhook(nested_message(50));
  ASSERT_TRUE(std::holds_alternative<webhook_batch>(shallow));
  EXPECT_EQ(std::get<webhook_batch>(shallow).messages.size(), 1u);

  // Brackets inside strings do not count.
  json in_string = envelope({{"messages", {text_message("wamid.S")}}});
  in_string["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] =
      std::string(10'000, '[') + "\\\"" + std::string(10'000, '{');
  EXPECT_EQ(parse_ok(in_string).messages.size(), 1u);

  // The document overloads apply the same limit, iteratively (nlohmann parses and destroys deep
  // trees without recursion; copying or dumping them would recurse).
  json doc = json::parse(nested_message(5'000));
  EXPECT_TRUE(std::holds_alternative<webhook_error>(parse_webhook(doc)));
  EXPECT_TRUE(std::holds_alternative<webhook_error>(parse_webhook(std::move(doc))));
}

TEST(webhook, entry_points_accept_strings_documents_and_rvalues) {
  const std::string body = fixture("message.json", "text").dump();
  EXPECT_TRUE(std::holds_alternative<webhook_batch>(parse_webhook(body)));
  EXPECT_TRUE(std::holds_alternative<webhook_batch>(parse_webhook(std::string_view(body))));
  EXPECT_TRUE(std::holds_alternative<webhook_error>(parse_webhook("plain literal")));
  json doc = json::parse(body);
  const json& cdoc = doc;
  auto from_const = parse_webhook(cdoc);
  auto from_lvalue = parse_webhook(doc);
  EXPECT_EQ(doc, json::parse(body)) << "an lvalue document is left untouched";
  auto from_rvalue = parse_webhook(std::move(doc));
  for (auto* r : {&from_const, &from_lvalue, &from_rvalue}) {
    ASSERT_TRUE(std::holds_alternative<webhook_batch>(*r));
    EXPECT_EQ(std::get<webhook_batch>(*r).messages.at(0).content["body"], "Body Text");
  }
}

// ---- the fuzz harness, replayed under the normal compiler --------------------------------------

TEST(webhook_fuzz_replay, fixtures_and_corrupt_variants) {
  auto feed = [](const std::string& bytes) {
    LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  };
  std::vector<std::string> seeds;
  for (const auto& de : fs::directory_iterator(fixtures_dir())) {
    if (de.path().extension() != ".json")
      continue;
    const std::string file = read_file(de.path());
    seeds.push_back(file); // the whole file: the harness unpacks it
    const json all = json::parse(file);
    for (auto& [name, body] : all.items())
      seeds.push_back(body.dump());
  }
  ASSERT_GE(seeds.size(), 77u + 21u);

  for (const auto& s : seeds)
    feed(s);
  std::mt19937 rng(1234);
  for (const auto& s : seeds) {
    // Truncations, byte flips, deletions and duplications of real payloads.
    for (int i = 0; i < 12; ++i) {
      std::string v = s;
      const size_t at = std::uniform_int_distribution<size_t>(0, v.size() - 1)(rng);
      switch (i % 4) {
      case 0:
        v.resize(at);
        break;
      case 1:
        v[at] = static_cast<char>(std::uniform_int_distribution<int>(0, 255)(rng));
        break;
      case 2:
        v.erase(at, std::uniform_int_distribution<size_t>(1, 32)(rng));
        break;
      case 3:
        v.insert(at, v.substr(at, std::uniform_int_distribution<size_t>(1, 64)(rng)));
        break;
      }
      feed(v);
    }
  }
  for (const std::string& hand_made :
       {std::string(), std::string("\0", 1), std::string("{"), std::string("}"),
        std::string("[[[[[[[[[["), std::string(100'000, '{'), std::string(70, '[') + "]",
        std::string(R"({"object":"whatsapp_business_account","entry":[{"changes":[{"field":)"
                    R"("messages","value":{"messages":[{"id":"","from":null,"type":{}}],)"
                    R"("statuses":[{"id":"x","status":"sent","errors":[7,{"code":"x"}]}]}}]}]})"),
        std::string(R"({"object":"whatsapp_business_account","entry":[null,[],{"changes":null}]})"),
        std::string("\"\\ud800\""), std::string("{\"object\":\"whatsapp_business_account\xc3\"}"),
        std::string(R"({"a":{"object":"whatsapp_business_account","entry":[{"changes":[{"field":)"
                    R"("messages","value":{"messages":[{"id":"1","from":"2","type":"edit","edit":)"
                    R"({"message":{"type":"edit","edit":{"message":{"type":"text"}}}}}]}}]}]}})")})
    feed(hand_made);
}
