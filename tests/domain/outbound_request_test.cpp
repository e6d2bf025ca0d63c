#include "domain/outbound_request.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

using namespace parley::domain;
using nlohmann::json;

namespace {

json body_of(std::string_view type, const json& content, std::string_view to = "+4915112345678") {
  json b = {{"to", to}, {"type", type}};
  b[std::string(type)] = content;
  return b;
}

// The message of the invalid_field thrown for `body`, or "" if it parsed.
std::string rejection(const json& body) {
  try {
    (void)parse_outbound_request(body);
  } catch (const invalid_field& e) {
    return e.what();
  }
  return "";
}

std::string repeat(std::string_view s, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i)
    out += s;
  return out;
}

json buttons(size_t n) {
  json list = json::array();
  for (size_t i = 0; i < n; ++i)
    list.push_back(
        {{"type", "reply"}, {"reply", {{"id", "b" + std::to_string(i)}, {"title", "Yes"}}}});
  return list;
}

json rows(size_t n, size_t first = 0) {
  json list = json::array();
  for (size_t i = 0; i < n; ++i)
    list.push_back({{"id", "r" + std::to_string(first + i)}, {"title", "Row"}});
  return list;
}

json button_message(json action) {
  return {{"type", "button"}, {"body", {{"text", "Pick one"}}}, {"action", std::move(action)}};
}

// `base` with the members of `patch` set on top.
json with(json base, const json& patch) {
  base.update(patch);
  return base;
}

json list_message(json action) {
  return {{"type", "list"}, {"body", {{"text", "Menu"}}}, {"action", std::move(action)}};
}

} // namespace

// ---- valid requests and their Graph payloads ---------------------------------------------------

TEST(outbound_request, every_valid_sample_builds_its_graph_payload) {
  const std::vector<json> samples = {
      body_of("text", {{"body", "Hello ☀"}, {"preview_url", true}}),
      body_of("text", {{"body", "x"}, {"future_field", {{"a", 1}}}}), // passed through
      body_of("template",
              {{"name", "order_update"},
               {"language", {{"code", "en_US"}}},
               {"components",
                {{{"type", "body"}, {"parameters", {{{"type", "text"}, {"text", "42"}}}}}}}}),
      body_of("template", {{"name", "hello_world"}, {"language", {{"code", "en"}}}}),
      body_of("image", {{"link", "https://example.com/a.jpg"}, {"caption", "A"}}),
      body_of("image", {{"id", "1234567890"}}),
      body_of("audio", {{"id", "987"}}),
      body_of("video", {{"link", "http://example.com/v.mp4"}, {"caption", "V"}}),
      body_of("document", {{"id", "55"}, {"filename", "invoice.pdf"}, {"caption", "Invoice"}}),
      body_of("sticker", {{"link", "HTTPS://example.com/s.webp"}}),
      body_of(
          "location",
          {{"latitude", 52.52}, {"longitude", -13.4}, {"name", "Berlin"}, {"address", "Mitte"}}),
      body_of("location", {{"latitude", -90}, {"longitude", 180}}),
      body_of("interactive", button_message({{"buttons", buttons(3)}})),
      body_of("interactive", {{"type", "button"},
                              {"header", {{"type", "text"}, {"text", "Order"}}},
                              {"body", {{"text", "Confirm?"}}},
                              {"footer", {{"text", "Reply below"}}},
                              {"action", {{"buttons", buttons(1)}}}}),
      body_of("interactive",
              {{"type", "button"},
               {"header", {{"type", "image"}, {"image", {{"link", "https://e.com/i.png"}}}}},
               {"body", {{"text", "Look"}}},
               {"action", {{"buttons", buttons(2)}}}}),
      body_of("interactive", list_message({{"button", "Options"},
                                           {"sections",
                                            {{{"title", "A"}, {"rows", rows(4)}},
                                             {{"title", "B"}, {"rows", rows(6, 4)}}}}})),
      body_of("interactive",
              list_message({{"button", "Options"}, {"sections", {{{"rows", rows(1)}}}}})),
      body_of("interactive",
              {{"type", "cta_url"},
               {"body", {{"text", "See"}}},
               {"action",
                {{"name", "cta_url"},
                 {"parameters", {{"display_text", "Open"}, {"url", "https://e.com"}}}}}}),
      body_of("interactive",
              {{"type", "product"},
               {"action", {{"catalog_id", "c1"}, {"product_retailer_id", "sku-1"}}}}),
      body_of("interactive",
              {{"type", "product_list"},
               {"header", {{"type", "text"}, {"text", "Shop"}}},
               {"body", {{"text", "Ours"}}},
               {"action",
                {{"catalog_id", "c1"},
                 {"sections",
                  {{{"title", "All"}, {"product_items", {{{"product_retailer_id", "a"}}}}}}}}}}),
      body_of("interactive", {{"type", "flow"},
                              {"body", {{"text", "Sign up"}}},
                              {"action", {{"name", "flow"}, {"parameters", {{"flow_id", "1"}}}}}}),
      body_of("reaction", {{"message_id", "wamid.ABC"}, {"emoji", "\xF0\x9F\x91\x8D"}}),
      body_of("reaction", {{"message_id", "0b9f6c2e-3d7a-4e1b-9c55-2f8a4d6e1b90"}, {"emoji", ""}}),
  };
  for (const json& body : samples) {
    SCOPED_TRACE(body.dump());
    outbound_request r;
    ASSERT_NO_THROW(r = parse_outbound_request(body));
    const std::string type = body["type"];
    EXPECT_EQ(r.type, type);
    EXPECT_EQ(r.to, "4915112345678");
    EXPECT_EQ(r.content, body[type]);
    const json expected = {{"messaging_product", "whatsapp"},
                           {"recipient_type", "individual"},
                           {"to", "4915112345678"},
                           {"type", type},
                           {type, body[type]}};
    EXPECT_EQ(graph_message_payload(r), expected);
  }
}

TEST(outbound_request, optional_top_level_fields) {
  json body = body_of("text", {{"body", "hi"}}, "4915112345678");
  body["channel_id"] = "0B9F6C2E-3D7A-4E1B-9C55-2F8A4D6E1B90";
  body["client_message_id"] = "order-42 #1";
  const auto r = parse_outbound_request(body);
  EXPECT_EQ(r.channel_id, "0b9f6c2e-3d7a-4e1b-9c55-2f8a4d6e1b90");
  EXPECT_EQ(r.client_message_id, "order-42 #1");
  EXPECT_EQ(r.to, "4915112345678");

  body["channel_id"] = nullptr;
  body["client_message_id"] = nullptr;
  const auto nulls = parse_outbound_request(body);
  EXPECT_FALSE(nulls.channel_id);
  EXPECT_FALSE(nulls.client_message_id);
}

TEST(outbound_request, read_needs_no_recipient) {
  const json body = {{"type", "read"}, {"read", {{"message_id", "wamid.XYZ"}}}};
  const auto r = parse_outbound_request(body);
  EXPECT_EQ(r.type, "read");
  EXPECT_TRUE(r.to.empty());
  EXPECT_FALSE(r.requires_window());
  const json expected = {
      {"messaging_product", "whatsapp"}, {"status", "read"}, {"message_id", "wamid.XYZ"}};
  EXPECT_EQ(graph_message_payload(r), expected);
  EXPECT_EQ(graph_read_payload("wamid.XYZ"), expected);
}

TEST(outbound_request, window_rule_per_type) {
  EXPECT_TRUE(parse_outbound_request(body_of("text", {{"body", "x"}})).requires_window());
  EXPECT_TRUE(parse_outbound_request(body_of("reaction", {{"message_id", "m"}, {"emoji", ""}}))
                  .requires_window());
  EXPECT_FALSE(
      parse_outbound_request(body_of("template", {{"name", "t"}, {"language", {{"code", "en"}}}}))
          .requires_window());
}

TEST(outbound_request, text_length_counts_code_points) {
  EXPECT_NO_THROW(
      parse_outbound_request(body_of("text", {{"body", repeat("\xE2\x98\x80", 4096)}})));
  EXPECT_NO_THROW(parse_outbound_request(body_of("text", {{"body", repeat("a", 4096)}})));
  EXPECT_EQ(rejection(body_of("text", {{"body", repeat("a", 4097)}})),
            "field 'text.body' must be 1-4096 characters (got 4097)");
}

TEST(outbound_request, list_may_hold_ten_rows_in_total) {
  EXPECT_NO_THROW(parse_outbound_request(
      body_of("interactive", list_message({{"button", "B"},
                                           {"sections",
                                            {{{"title", "A"}, {"rows", rows(5)}},
                                             {{"title", "B"}, {"rows", rows(5, 5)}}}}}))));
}

// ---- rejections: each rule, each message naming the field ---------------------------------------

struct bad_case {
  json body;
  std::string message; ///< exact what(), or a prefix when it ends with "..."
};

TEST(outbound_request, each_rule_names_its_field) {
  const std::string long_title = repeat("t", 21);
  const std::vector<bad_case> cases = {
      // top level
      {json::array(), "request body must be a JSON object"},
      {"text", "request body must be a JSON object"},
      {{{"to", "4915112345678"}},
       "field 'type' is required: one of text, template, image, audio, video, document, sticker, "
       "location, interactive, reaction, read"},
      {{{"to", "4915112345678"}, {"type", "poll"}, {"poll", json::object()}},
       "field 'type' must be one of text, template, image, audio, video, document, sticker, "
       "location, interactive, reaction, read"},
      {{{"to", "4915112345678"}, {"type", 5}}, "field 'type' must be one of ..."},
      {{{"to", "4915112345678"}, {"type", "text"}, {"text", {{"body", "x"}}}, {"priority", 1}},
       "field 'priority' is not allowed; the fields are channel_id, to, type, text, "
       "client_message_id"},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"image", {{"id", "1"}}}},
       "field 'image' is not allowed; ..."},
      {{{"type", "text"}, {"text", {{"body", "x"}}}}, "field 'to' is required: ..."},
      {body_of("text", {{"body", "x"}}, "12345"),
       "field 'to' must be the recipient's phone number in international format: 6-15 digits, "
       "optionally with a leading '+' (e.g. \"+4915112345678\")"},
      {body_of("text", {{"body", "x"}}, "+1234567890123456"), "field 'to' must be ..."},
      {body_of("text", {{"body", "x"}}, "++4915112345678"), "field 'to' must be ..."},
      {body_of("text", {{"body", "x"}}, "+49 151 12345678"), "field 'to' must be ..."},
      {body_of("text", {{"body", "x"}}, ""), "field 'to' must be ..."},
      {{{"to", 4915112345678}, {"type", "text"}, {"text", {{"body", "x"}}}},
       "field 'to' must be ..."},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"channel_id", "not-a-uuid"}},
       "field 'channel_id' must be a channel id (a UUID such as ..."},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"channel_id", "0b9f6c2e-3d7a-4e1b-9c55-2f8a4d6e1b9g"}},
       "field 'channel_id' must be a channel id ..."},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"channel_id", "0b9f6c2e03d7a-4e1b-9c55-2f8a4d6e1b90"}},
       "field 'channel_id' must be a channel id ..."},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"client_message_id", ""}},
       "field 'client_message_id' must be 1-128 printable ASCII characters"},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"client_message_id", repeat("a", 129)}},
       "field 'client_message_id' must be ..."},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"client_message_id", "tab\there"}},
       "field 'client_message_id' must be ..."},
      {{{"to", "4915112345678"},
        {"type", "text"},
        {"text", {{"body", "x"}}},
        {"client_message_id", "caf\xC3\xA9"}},
       "field 'client_message_id' must be ..."},
      {{{"to", "4915112345678"}, {"type", "text"}},
       "field 'text' is required: the text object for type \"text\""},
      {{{"to", "4915112345678"}, {"type", "text"}, {"text", "hello"}},
       "field 'text' must be an object"},
      {{{"type", "read"}}, "field 'read' is required: ..."},
      // text
      {body_of("text", json::object()),
       "field 'text.body' is required: a string of 1-4096 characters"},
      {body_of("text", {{"body", ""}}), "field 'text.body' must be 1-4096 characters (got 0)"},
      {body_of("text", {{"body", 5}}), "field 'text.body' must be a string of 1-4096 characters"},
      {body_of("text", {{"body", "x"}, {"preview_url", "yes"}}),
       "field 'text.preview_url' must be true or false"},
      // template
      {body_of("template", {{"language", {{"code", "en"}}}}),
       "field 'template.name' is required: a string of 1-512 characters"},
      {body_of("template", {{"name", repeat("n", 513)}, {"language", {{"code", "en"}}}}),
       "field 'template.name' must be 1-512 characters (got 513)"},
      {body_of("template", {{"name", "t"}}), "field 'template.language' is required: an object"},
      {body_of("template", {{"name", "t"}, {"language", "en"}}),
       "field 'template.language' must be an object"},
      {body_of("template", {{"name", "t"}, {"language", json::object()}}),
       "field 'template.language.code' is required: ..."},
      {body_of("template", {{"name", "t"}, {"language", {{"code", "en"}}}, {"components", 1}}),
       "field 'template.components' must be an array of objects"},
      {body_of("template",
               {{"name", "t"}, {"language", {{"code", "en"}}}, {"components", {{{"a", 1}}, 2}}}),
       "field 'template.components[1]' must be an object"},
      // media
      {body_of("image", json::object()),
       "field 'image' must have exactly one of 'id' (an uploaded media id) or 'link' (an http(s) "
       "URL)"},
      {body_of("video", {{"id", "1"}, {"link", "https://e.com/v.mp4"}}),
       "field 'video' must have exactly one of ..."},
      {body_of("image", {{"link", "ftp://e.com/a.jpg"}}),
       "field 'image.link' must be an http:// or https:// URL without spaces"},
      {body_of("image", {{"link", "https://"}}), "field 'image.link' must be an http:// ..."},
      {body_of("image", {{"link", "https://e.com/a b.jpg"}}), "field 'image.link' must be ..."},
      {body_of("image", {{"link", 7}}), "field 'image.link' must be a string of 1-2048 characters"},
      {body_of("image", {{"id", ""}}), "field 'image.id' must be 1-256 characters (got 0)"},
      {body_of("audio", {{"id", "1"}, {"caption", "c"}}),
       "field 'audio.caption' is not allowed for audio (only image, video and document have "
       "captions)"},
      {body_of("sticker", {{"id", "1"}, {"caption", "c"}}),
       "field 'sticker.caption' is not allowed for sticker ..."},
      {body_of("image", {{"id", "1"}, {"caption", repeat("c", 1025)}}),
       "field 'image.caption' must be 1-1024 characters (got 1025)"},
      {body_of("image", {{"id", "1"}, {"filename", "a.jpg"}}),
       "field 'image.filename' is only allowed for document"},
      {body_of("document", {{"id", "1"}, {"filename", ""}}),
       "field 'document.filename' must be 1-240 characters (got 0)"},
      // location
      {body_of("location", {{"longitude", 1}}),
       "field 'location.latitude' is required: a number from -90 to 90"},
      {body_of("location", {{"latitude", 90.5}, {"longitude", 1}}),
       "field 'location.latitude' must be a number from -90 to 90"},
      {body_of("location", {{"latitude", "52.5"}, {"longitude", 1}}),
       "field 'location.latitude' must be a number from -90 to 90"},
      {body_of("location", {{"latitude", 1}, {"longitude", -181}}),
       "field 'location.longitude' must be a number from -180 to 180"},
      {body_of("location", {{"latitude", 1}, {"longitude", 1}, {"name", 3}}),
       "field 'location.name' must be a string of ..."},
      // interactive: common parts
      {body_of("interactive", {{"body", {{"text", "x"}}}}),
       "field 'interactive.type' is required: one of button, list, cta_url, product, "
       "product_list, flow"},
      {body_of("interactive", {{"type", "carousel"}}),
       "field 'interactive.type' must be one of button, list, cta_url, product, product_list, "
       "flow"},
      {body_of("interactive", {{"type", "button"}, {"action", {{"buttons", buttons(1)}}}}),
       "field 'interactive.body' is required: an object"},
      {body_of("interactive", with(button_message({{"buttons", buttons(1)}}),
                                   {{"body", {{"text", repeat("b", 1025)}}}})),
       "field 'interactive.body.text' must be 1-1024 characters (got 1025)"},
      {body_of("interactive",
               with(button_message({{"buttons", buttons(1)}}), {{"body", json::object()}})),
       "field 'interactive.body.text' is required: a string of 1-1024 characters"},
      {body_of("interactive", {{"type", "button"}, {"body", {{"text", "x"}}}}),
       "field 'interactive.action' is required: an object"},
      {body_of("interactive",
               with(button_message({{"buttons", buttons(1)}}), {{"footer", {{"text", ""}}}})),
       "field 'interactive.footer.text' must be 1-60 characters (got 0)"},
      {body_of("interactive", with(button_message({{"buttons", buttons(1)}}), {{"header", "x"}})),
       "field 'interactive.header' must be an object"},
      {body_of("interactive", with(button_message({{"buttons", buttons(1)}}),
                                   {{"header", {{"type", "text"}, {"text", repeat("h", 61)}}}})),
       "field 'interactive.header.text' must be 1-60 characters (got 61)"},
      {body_of("interactive",
               with(button_message({{"buttons", buttons(1)}}), {{"header", {{"type", "gif"}}}})),
       "field 'interactive.header.type' must be one of text, image, video, document"},
      {body_of("interactive",
               with(button_message({{"buttons", buttons(1)}}), {{"header", {{"type", "image"}}}})),
       "field 'interactive.header.image' is required: an object"},
      // interactive button
      {body_of("interactive", button_message(json::object())),
       "field 'interactive.action.buttons' is required: an array of 1-3 reply buttons"},
      {body_of("interactive", button_message({{"buttons", buttons(4)}})),
       "field 'interactive.action.buttons' must be an array of 1-3 reply buttons"},
      {body_of("interactive", button_message({{"buttons", json::array()}})),
       "field 'interactive.action.buttons' must be an array of 1-3 reply buttons"},
      {body_of("interactive", button_message({{"buttons", {"yes"}}})),
       "field 'interactive.action.buttons[0]' must be an object ..."},
      {body_of("interactive",
               button_message(
                   {{"buttons", {{{"type", "url"}, {"reply", {{"id", "a"}, {"title", "A"}}}}}}})),
       "field 'interactive.action.buttons[0].type' must be \"reply\""},
      {body_of("interactive", button_message({{"buttons", {{{"type", "reply"}}}}})),
       "field 'interactive.action.buttons[0].reply' is required: an object"},
      {body_of("interactive",
               button_message({{"buttons", {{{"type", "reply"}, {"reply", {{"title", "A"}}}}}}})),
       "field 'interactive.action.buttons[0].reply.id' is required: a string of 1-256 characters"},
      {body_of("interactive",
               button_message({{"buttons",
                                {{{"type", "reply"},
                                  {"reply", {{"id", repeat("i", 257)}, {"title", "A"}}}}}}})),
       "field 'interactive.action.buttons[0].reply.id' must be 1-256 characters (got 257)"},
      {body_of("interactive",
               button_message(
                   {{"buttons",
                     {{{"type", "reply"}, {"reply", {{"id", "a"}, {"title", "A"}}}},
                      {{"type", "reply"}, {"reply", {{"id", "b"}, {"title", long_title}}}}}}})),
       "field 'interactive.action.buttons[1].reply.title' must be 1-20 characters (got 21)"},
      {body_of("interactive",
               button_message({{"buttons",
                                {{{"type", "reply"}, {"reply", {{"id", "a"}, {"title", "A"}}}},
                                 {{"type", "reply"}, {"reply", {{"id", "a"}, {"title", "B"}}}}}}})),
       "field 'interactive.action.buttons[1].reply.id' must be unique among the buttons (\"a\" "
       "repeats)"},
      // interactive list
      {body_of("interactive", list_message({{"sections", {{{"rows", rows(1)}}}}})),
       "field 'interactive.action.button' is required: a string of 1-20 characters"},
      {body_of("interactive",
               list_message({{"button", long_title}, {"sections", {{{"rows", rows(1)}}}}})),
       "field 'interactive.action.button' must be 1-20 characters (got 21)"},
      {body_of("interactive", list_message({{"button", "B"}})),
       "field 'interactive.action.sections' is required: an array of 1-10 sections"},
      {body_of("interactive", list_message({{"button", "B"}, {"sections", json::array()}})),
       "field 'interactive.action.sections' must be an array of 1-10 sections"},
      {body_of(
           "interactive",
           list_message({{"button", "B"},
                         {"sections", json::array({json{{"rows", rows(1)}},
                                                   json{{"title", "T"}, {"rows", rows(1, 1)}}})}})),
       "field 'interactive.action.sections[0].title' is required: a string of 1-24 characters"},
      {body_of("interactive", list_message({{"button", "B"}, {"sections", {{{"title", "T"}}}}})),
       "field 'interactive.action.sections[0].rows' is required: an array of 1-10 rows"},
      {body_of("interactive",
               list_message({{"button", "B"}, {"sections", {{{"rows", json::array()}}}}})),
       "field 'interactive.action.sections[0].rows' must be an array of 1-10 rows"},
      {body_of("interactive", list_message({{"button", "B"},
                                            {"sections",
                                             {{{"title", "A"}, {"rows", rows(6)}},
                                              {{"title", "B"}, {"rows", rows(5, 6)}}}}})),
       "field 'interactive.action.sections' must hold at most 10 rows in total"},
      {body_of(
           "interactive",
           list_message({{"button", "B"},
                         {"sections", {{{"rows", {{{"id", "r"}, {"title", repeat("t", 25)}}}}}}}})),
       "field 'interactive.action.sections[0].rows[0].title' must be 1-24 characters (got 25)"},
      {body_of("interactive",
               list_message(
                   {{"button", "B"},
                    {"sections", {{{"rows", {{{"id", repeat("i", 201)}, {"title", "t"}}}}}}}})),
       "field 'interactive.action.sections[0].rows[0].id' must be 1-200 characters (got 201)"},
      {body_of("interactive",
               list_message(
                   {{"button", "B"},
                    {"sections",
                     {{{"rows",
                        {{{"id", "r"}, {"title", "t"}, {"description", repeat("d", 73)}}}}}}}})),
       "field 'interactive.action.sections[0].rows[0].description' must be 0-72 characters (got "
       "73)"},
      {body_of("interactive", list_message({{"button", "B"},
                                            {"sections",
                                             {{{"title", "A"}, {"rows", rows(2)}},
                                              {{"title", "B"}, {"rows", rows(2, 1)}}}}})),
       "field 'interactive.action.sections[1].rows[0].id' must be unique among the rows (\"r1\" "
       "repeats)"},
      // other interactive types
      {body_of("interactive",
               {{"type", "cta_url"},
                {"body", {{"text", "x"}}},
                {"action", {{"name", "cta_url"}, {"parameters", {{"display_text", "Go"}}}}}}),
       "field 'interactive.action.parameters.url' is required: an http:// or https:// URL"},
      {body_of("interactive", {{"type", "cta_url"},
                               {"body", {{"text", "x"}}},
                               {"action", {{"name", "link"}, {"parameters", json::object()}}}}),
       "field 'interactive.action.name' must be \"cta_url\""},
      {body_of("interactive", {{"type", "product"}, {"action", {{"catalog_id", "c"}}}}),
       "field 'interactive.action.product_retailer_id' is required: ..."},
      {body_of(
           "interactive",
           {{"type", "product_list"},
            {"body", {{"text", "x"}}},
            {"action", {{"catalog_id", "c"}, {"sections", {{{"product_items", json::array()}}}}}}}),
       "field 'interactive.action.sections[0].product_items' must be an array of 1-30 products"},
      {body_of("interactive",
               {{"type", "flow"}, {"body", {{"text", "x"}}}, {"action", {{"name", "flow"}}}}),
       "field 'interactive.action.parameters' is required: an object"},
      // reaction and read
      {body_of("reaction", {{"emoji", "x"}}),
       "field 'reaction.message_id' is required: a string of 1-256 characters"},
      {body_of("reaction", {{"message_id", ""}, {"emoji", "x"}}),
       "field 'reaction.message_id' must be 1-256 characters (got 0)"},
      {body_of("reaction", {{"message_id", "m"}}),
       "field 'reaction.emoji' is required: a string with one emoji, or \"\" to remove the "
       "reaction"},
      {body_of("reaction", {{"message_id", "m"}, {"emoji", repeat("a", 17)}}),
       "field 'reaction.emoji' must be a single emoji, or \"\" to remove the reaction"},
      {{{"type", "read"}, {"read", json::object()}},
       "field 'read.message_id' is required: a string of 1-256 characters"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.body.dump().substr(0, 300));
    const std::string got = rejection(c.body);
    ASSERT_FALSE(got.empty()) << "accepted";
    const bool prefix = c.message.size() > 3 && c.message.ends_with("...");
    if (prefix)
      EXPECT_EQ(got.substr(0, c.message.size() - 3), c.message.substr(0, c.message.size() - 3));
    else
      EXPECT_EQ(got, c.message);
  }
}
