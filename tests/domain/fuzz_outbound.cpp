// libFuzzer target for the outbound parsers that read untrusted bytes: bodies of POST /v1/messages
// (parse_outbound_request must refuse anything with invalid_field and never crash; what it
// accepts must build a Graph payload that serialises) and answers of whatever server a channel's
// Graph URL points at (classify_graph_response must classify anything without throwing).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <nlohmann/json.hpp>

#include "domain/graph_response.hpp"
#include "domain/json_depth.hpp"
#include "domain/outbound_request.hpp"

namespace {

void check(bool ok) {
  if (!ok)
    std::abort();
}

void fuzz_request(std::string_view text) {
  // The edge measures nesting before parsing (actors/edge/support.cpp json_body); so does this.
  if (parley::domain::json_text_nests_deeper_than(text, 64))
    return;
  auto body = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded())
    return;
  try {
    auto r = parley::domain::parse_outbound_request(body);
    check(!r.type.empty());
    check(r.type == "read" || !r.to.empty());
    auto payload = parley::domain::graph_message_payload(r);
    check(!payload.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).empty());
  } catch (const parley::domain::invalid_field& e) {
    check(e.what()[0] != '\0');
  }
}

void fuzz_answer(int status, std::string_view body) {
  auto g = parley::domain::classify_graph_response(status, body);
  check(g.error_title.size() <= 512);
  check(g.error_details.size() <= 2048);
  // Only a 2xx answer can mean Meta took the message.
  check(g.outcome != parley::domain::graph_outcome::sent || (status >= 200 && status < 300));
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  fuzz_request(text);
  // The same bytes as a Graph answer under a status taken from their length.
  static constexpr int statuses[] = {200, 400, 401, 429, 500, 503, 0, 302};
  fuzz_answer(statuses[size % 8], text);
  return 0;
}
