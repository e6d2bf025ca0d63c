#include "domain/outbound_request.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <set>

namespace parley::domain {

namespace {

using nlohmann::json;

constexpr std::array<std::string_view, 11> supported_types = {
    "text",    "template", "image",       "audio",    "video", "document",
    "sticker", "location", "interactive", "reaction", "read"};

constexpr std::string_view supported_types_text =
    "text, template, image, audio, video, document, sticker, location, interactive, reaction, "
    "read";

constexpr std::array<std::string_view, 6> interactive_types = {"button",  "list",         "cta_url",
                                                               "product", "product_list", "flow"};

[[noreturn]] void fail(const std::string& path, std::string_view what) {
  std::string message = "field '";
  message += path;
  message += "' ";
  message += what;
  throw invalid_field(message);
}

std::string join(std::string_view parent, std::string_view key) {
  std::string path(parent);
  path += '.';
  path += key;
  return path;
}

std::string index_path(std::string_view parent, size_t i) {
  return std::string(parent) + '[' + std::to_string(i) + ']';
}

// json strings from the parser are valid UTF-8, so counting the bytes that start a sequence
// counts code points: Meta's limits are in characters, not bytes.
size_t code_points(const std::string& s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

const json* get(const json& obj, std::string_view key) {
  const auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

std::string length_rule(size_t min, size_t max) {
  return std::to_string(min) + "-" + std::to_string(max) + " characters";
}

const std::string& check_string(const json& v, const std::string& path, size_t min, size_t max) {
  if (!v.is_string())
    fail(path, "must be a string of " + length_rule(min, max));
  const auto& s = v.get_ref<const std::string&>();
  const size_t n = code_points(s);
  if (n < min || n > max)
    fail(path, "must be " + length_rule(min, max) + " (got " + std::to_string(n) + ")");
  return s;
}

const std::string& required_string(const json& obj, std::string_view key, const std::string& parent,
                                   size_t min, size_t max) {
  const std::string path = join(parent, key);
  const json* v = get(obj, key);
  if (v == nullptr)
    fail(path, "is required: a string of " + length_rule(min, max));
  return check_string(*v, path, min, max);
}

void optional_string(const json& obj, std::string_view key, const std::string& parent, size_t min,
                     size_t max) {
  if (const json* v = get(obj, key))
    check_string(*v, join(parent, key), min, max);
}

const json& required_object(const json& obj, std::string_view key, const std::string& parent) {
  const std::string path = join(parent, key);
  const json* v = get(obj, key);
  if (v == nullptr)
    fail(path, "is required: an object");
  if (!v->is_object())
    fail(path, "must be an object");
  return *v;
}

const json* optional_object(const json& obj, std::string_view key, const std::string& parent) {
  const json* v = get(obj, key);
  if (v != nullptr && !v->is_object())
    fail(join(parent, key), "must be an object");
  return v;
}

const json& required_array(const json& obj, std::string_view key, const std::string& parent,
                           size_t min, size_t max, std::string_view of_what) {
  const std::string path = join(parent, key);
  const std::string rule =
      "an array of " + std::to_string(min) + "-" + std::to_string(max) + " " + std::string(of_what);
  const json* v = get(obj, key);
  if (v == nullptr)
    fail(path, "is required: " + rule);
  if (!v->is_array() || v->size() < min || v->size() > max)
    fail(path, "must be " + rule);
  return *v;
}

void check_bool(const json& obj, std::string_view key, const std::string& parent) {
  if (const json* v = get(obj, key); v != nullptr && !v->is_boolean())
    fail(join(parent, key), "must be true or false");
}

void require_equal(const json& obj, std::string_view key, const std::string& parent,
                   std::string_view expected) {
  const json* v = get(obj, key);
  if (v == nullptr || !v->is_string() || v->get_ref<const std::string&>() != expected)
    fail(join(parent, key), "must be \"" + std::string(expected) + "\"");
}

bool is_http_url(const std::string& s) {
  std::string lower = s.substr(0, 8);
  std::transform(lower.begin(), lower.end(), lower.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  size_t host = 0;
  if (lower.rfind("https://", 0) == 0)
    host = 8;
  else if (lower.rfind("http://", 0) == 0)
    host = 7;
  else
    return false;
  if (host >= s.size() || s[host] == '/')
    return false;
  return std::none_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u <= 0x20 || u == 0x7f;
  });
}

void check_url(const json& v, const std::string& path) {
  const auto& s = check_string(v, path, 1, 2048);
  if (!is_http_url(s))
    fail(path, "must be an http:// or https:// URL without spaces");
}

// ---- per type ---------------------------------------------------------------------------------

void validate_text(const json& c) {
  required_string(c, "body", "text", 1, 4096);
  check_bool(c, "preview_url", "text");
}

void validate_template(const json& c) {
  required_string(c, "name", "template", 1, 512);
  const json& language = required_object(c, "language", "template");
  required_string(language, "code", "template.language", 1, 32);
  if (const json* components = get(c, "components")) {
    if (!components->is_array())
      fail("template.components", "must be an array of objects");
    for (size_t i = 0; i < components->size(); ++i)
      if (!(*components)[i].is_object())
        fail(index_path("template.components", i), "must be an object");
  }
}

// Media objects: image/audio/video/document/sticker messages and interactive headers.
void validate_media(const json& c, const std::string& path, std::string_view kind) {
  const json* id = get(c, "id");
  const json* link = get(c, "link");
  if ((id == nullptr) == (link == nullptr))
    fail(path, "must have exactly one of 'id' (an uploaded media id) or 'link' (an http(s) URL)");
  if (id != nullptr)
    check_string(*id, join(path, "id"), 1, 256);
  else
    check_url(*link, join(path, "link"));
  const bool captioned = kind == "image" || kind == "video" || kind == "document";
  if (const json* caption = get(c, "caption")) {
    if (!captioned)
      fail(join(path, "caption"), "is not allowed for " + std::string(kind) +
                                      " (only image, video and document have captions)");
    check_string(*caption, join(path, "caption"), 1, 1024);
  }
  if (const json* filename = get(c, "filename")) {
    if (kind != "document")
      fail(join(path, "filename"), "is only allowed for document");
    check_string(*filename, join(path, "filename"), 1, 240);
  }
}

void check_number(const json& c, std::string_view key, double min, double max) {
  const std::string path = join("location", key);
  const std::string rule = "a number from " + std::to_string(static_cast<int>(min)) + " to " +
                           std::to_string(static_cast<int>(max));
  const json* v = get(c, key);
  if (v == nullptr)
    fail(path, "is required: " + rule);
  if (!v->is_number())
    fail(path, "must be " + rule);
  const double d = v->get<double>();
  if (!(d >= min && d <= max))
    fail(path, "must be " + rule);
}

void validate_location(const json& c) {
  check_number(c, "latitude", -90, 90);
  check_number(c, "longitude", -180, 180);
  optional_string(c, "name", "location", 0, 1000);
  optional_string(c, "address", "location", 0, 1000);
}

void validate_header(const json& header) {
  const std::string path = "interactive.header";
  const auto& type = required_string(header, "type", path, 1, 16);
  if (type == "text") {
    required_string(header, "text", path, 1, 60);
  } else if (type == "image" || type == "video" || type == "document") {
    validate_media(required_object(header, type, path), join(path, type), "header");
  } else {
    fail(join(path, "type"), "must be one of text, image, video, document");
  }
}

void validate_buttons(const json& action) {
  const std::string parent = "interactive.action";
  const json& buttons = required_array(action, "buttons", parent, 1, 3, "reply buttons");
  std::set<std::string> ids;
  for (size_t i = 0; i < buttons.size(); ++i) {
    const std::string path = index_path(join(parent, "buttons"), i);
    const json& button = buttons[i];
    if (!button.is_object())
      fail(path, "must be an object {\"type\":\"reply\",\"reply\":{\"id\",\"title\"}}");
    require_equal(button, "type", path, "reply");
    const json& reply = required_object(button, "reply", path);
    const std::string reply_path = join(path, "reply");
    const auto& id = required_string(reply, "id", reply_path, 1, 256);
    required_string(reply, "title", reply_path, 1, 20);
    if (!ids.insert(id).second)
      fail(join(reply_path, "id"), "must be unique among the buttons (\"" + id + "\" repeats)");
  }
}

void validate_list(const json& action) {
  const std::string parent = "interactive.action";
  required_string(action, "button", parent, 1, 20);
  const json& sections = required_array(action, "sections", parent, 1, 10, "sections");
  size_t total_rows = 0;
  std::set<std::string> ids;
  for (size_t s = 0; s < sections.size(); ++s) {
    const std::string path = index_path(join(parent, "sections"), s);
    const json& section = sections[s];
    if (!section.is_object())
      fail(path, "must be an object {\"title\",\"rows\":[...]}");
    // Meta needs a title to tell sections apart once there is more than one.
    if (sections.size() > 1)
      required_string(section, "title", path, 1, 24);
    else
      optional_string(section, "title", path, 1, 24);
    const json& rows = required_array(section, "rows", path, 1, 10, "rows");
    total_rows += rows.size();
    if (total_rows > 10)
      fail(join(parent, "sections"), "must hold at most 10 rows in total");
    for (size_t r = 0; r < rows.size(); ++r) {
      const std::string row_path = index_path(join(path, "rows"), r);
      const json& row = rows[r];
      if (!row.is_object())
        fail(row_path, "must be an object {\"id\",\"title\",\"description\"?}");
      const auto& id = required_string(row, "id", row_path, 1, 200);
      required_string(row, "title", row_path, 1, 24);
      optional_string(row, "description", row_path, 0, 72);
      if (!ids.insert(id).second)
        fail(join(row_path, "id"), "must be unique among the rows (\"" + id + "\" repeats)");
    }
  }
}

void validate_cta_url(const json& action) {
  const std::string parent = "interactive.action";
  require_equal(action, "name", parent, "cta_url");
  const json& parameters = required_object(action, "parameters", parent);
  const std::string path = join(parent, "parameters");
  required_string(parameters, "display_text", path, 1, 20);
  const json* url = get(parameters, "url");
  if (url == nullptr)
    fail(join(path, "url"), "is required: an http:// or https:// URL");
  check_url(*url, join(path, "url"));
}

void validate_product_list(const json& action) {
  const std::string parent = "interactive.action";
  required_string(action, "catalog_id", parent, 1, 256);
  const json& sections = required_array(action, "sections", parent, 1, 10, "sections");
  for (size_t s = 0; s < sections.size(); ++s) {
    const std::string path = index_path(join(parent, "sections"), s);
    if (!sections[s].is_object())
      fail(path, "must be an object {\"title\",\"product_items\":[...]}");
    const json& items = required_array(sections[s], "product_items", path, 1, 30, "products");
    for (size_t i = 0; i < items.size(); ++i) {
      const std::string item_path = index_path(join(path, "product_items"), i);
      if (!items[i].is_object())
        fail(item_path, "must be an object {\"product_retailer_id\"}");
      required_string(items[i], "product_retailer_id", item_path, 1, 256);
    }
  }
}

void validate_interactive(const json& c) {
  const std::string parent = "interactive";
  const json* type_value = get(c, "type");
  std::string rule = "one of button, list, cta_url, product, product_list, flow";
  if (type_value == nullptr)
    fail("interactive.type", "is required: " + rule);
  if (!type_value->is_string() ||
      std::find(interactive_types.begin(), interactive_types.end(),
                type_value->get_ref<const std::string&>()) == interactive_types.end())
    fail("interactive.type", "must be " + rule);
  const auto& type = type_value->get_ref<const std::string&>();

  if (const json* header = optional_object(c, "header", parent))
    validate_header(*header);
  // Every interactive type but a single product needs a body.
  if (type == "product") {
    if (const json* body = optional_object(c, "body", parent))
      required_string(*body, "text", "interactive.body", 1, 1024);
  } else {
    required_string(required_object(c, "body", parent), "text", "interactive.body", 1, 1024);
  }
  if (const json* footer = optional_object(c, "footer", parent))
    required_string(*footer, "text", "interactive.footer", 1, 60);

  const json& action = required_object(c, "action", parent);
  if (type == "button") {
    validate_buttons(action);
  } else if (type == "list") {
    validate_list(action);
  } else if (type == "cta_url") {
    validate_cta_url(action);
  } else if (type == "product") {
    required_string(action, "catalog_id", "interactive.action", 1, 256);
    required_string(action, "product_retailer_id", "interactive.action", 1, 256);
  } else if (type == "product_list") {
    validate_product_list(action);
  } else { // flow
    require_equal(action, "name", "interactive.action", "flow");
    required_object(action, "parameters", "interactive.action");
  }
}

void validate_reaction(const json& c) {
  required_string(c, "message_id", "reaction", 1, 256);
  const json* emoji = get(c, "emoji");
  if (emoji == nullptr || !emoji->is_string())
    fail("reaction.emoji", "is required: a string with one emoji, or \"\" to remove the reaction");
  // Longer than any emoji sequence (ZWJ families, flags with tags): anything beyond is text.
  if (code_points(emoji->get_ref<const std::string&>()) > 16)
    fail("reaction.emoji", "must be a single emoji, or \"\" to remove the reaction");
}

void validate_read(const json& c) {
  required_string(c, "message_id", "read", 1, 256);
}

void validate_content(const std::string& type, const json& c) {
  if (type == "text")
    validate_text(c);
  else if (type == "template")
    validate_template(c);
  else if (type == "location")
    validate_location(c);
  else if (type == "interactive")
    validate_interactive(c);
  else if (type == "reaction")
    validate_reaction(c);
  else if (type == "read")
    validate_read(c);
  else
    validate_media(c, type, type);
}

// ---- top level --------------------------------------------------------------------------------

std::string parse_uuid(const json& v) {
  constexpr std::string_view rule = "must be a channel id (a UUID such as "
                                    "\"0b9f6c2e-3d7a-4e1b-9c55-2f8a4d6e1b90\")";
  if (!v.is_string())
    fail("channel_id", rule);
  std::string s = v.get<std::string>();
  if (s.size() != 36)
    fail("channel_id", rule);
  for (size_t i = 0; i < s.size(); ++i) {
    const bool dash_position = i == 8 || i == 13 || i == 18 || i == 23;
    if (dash_position ? s[i] != '-' : !std::isxdigit(static_cast<unsigned char>(s[i])))
      fail("channel_id", rule);
    s[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(s[i])));
  }
  return s;
}

std::string parse_wa_id(const json& v) {
  constexpr std::string_view rule =
      "must be the recipient's phone number in international format: 6-15 digits, optionally "
      "with a leading '+' (e.g. \"+4915112345678\")";
  if (!v.is_string())
    fail("to", rule);
  std::string_view s = v.get_ref<const std::string&>();
  if (!s.empty() && s.front() == '+')
    s.remove_prefix(1);
  if (s.size() < 6 || s.size() > 15 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; }))
    fail("to", rule);
  return std::string(s);
}

std::string parse_client_message_id(const json& v) {
  constexpr std::string_view rule = "must be 1-128 printable ASCII characters";
  if (!v.is_string())
    fail("client_message_id", rule);
  const auto& s = v.get_ref<const std::string&>();
  if (s.empty() || s.size() > 128 ||
      !std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c <= 0x7e; }))
    fail("client_message_id", rule);
  return s;
}

} // namespace

std::string_view supported_outbound_types() {
  return supported_types_text;
}

outbound_request parse_outbound_request(const json& body) {
  if (!body.is_object())
    throw invalid_field("request body must be a JSON object");

  outbound_request r;
  const json* type = get(body, "type");
  const std::string types_rule = "one of " + std::string(supported_types_text);
  if (type == nullptr)
    fail("type", "is required: " + types_rule);
  if (!type->is_string() || std::find(supported_types.begin(), supported_types.end(),
                                      type->get_ref<const std::string&>()) == supported_types.end())
    fail("type", "must be " + types_rule);
  r.type = type->get<std::string>();

  for (const auto& [key, value] : body.items()) {
    if (key != "channel_id" && key != "to" && key != "type" && key != "client_message_id" &&
        key != r.type)
      fail(key, "is not allowed; the fields are channel_id, to, type, " + r.type +
                    ", client_message_id");
  }

  if (const json* channel = get(body, "channel_id"); channel != nullptr && !channel->is_null())
    r.channel_id = parse_uuid(*channel);
  if (const json* to = get(body, "to"))
    r.to = parse_wa_id(*to);
  else if (r.type != "read")
    fail("to", "is required: the recipient's phone number in international format (e.g. "
               "\"+4915112345678\")");
  if (const json* id = get(body, "client_message_id"); id != nullptr && !id->is_null())
    r.client_message_id = parse_client_message_id(*id);

  const json* content = get(body, r.type);
  if (content == nullptr)
    fail(r.type, "is required: the " + r.type + " object for type \"" + r.type + "\"");
  if (!content->is_object())
    fail(r.type, "must be an object");
  validate_content(r.type, *content);
  r.content = *content;
  return r;
}

json graph_message_payload(const outbound_request& r) {
  if (r.type == "read") {
    const json* id = r.content.is_object() ? get(r.content, "message_id") : nullptr;
    return graph_read_payload(id != nullptr && id->is_string() ? id->get_ref<const std::string&>()
                                                               : std::string_view{});
  }
  json payload = json::object();
  payload["messaging_product"] = "whatsapp";
  payload["recipient_type"] = "individual";
  payload["to"] = r.to;
  payload["type"] = r.type;
  payload[r.type] = r.content;
  return payload;
}

json graph_read_payload(std::string_view wamid) {
  json payload = json::object();
  payload["messaging_product"] = "whatsapp";
  payload["status"] = "read";
  payload["message_id"] = std::string(wamid);
  return payload;
}

} // namespace parley::domain
