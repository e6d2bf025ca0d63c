#include "bench/webhook_ingest/payload.hpp"

#include <array>
#include <cstdio>
#include <string_view>

#include "domain/crypto.hpp"

namespace parley::bench {

namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

constexpr std::array<std::string_view, 8> names = {
    "Maria Fernanda Oliveira",
    "Ahmed Hassan",
    "Priya Raghunathan",
    "Jonas Becker",
    "Chloe Dubois",
    "Kenji Watanabe",
    "Olusegun Adeyemi",
    "Sofia Rossi",
};

// Customers write a few sentences; bodies of ~1 KB are typical once Meta's envelope is around them.
constexpr std::array<std::string_view, 10> sentences = {
    "Hello, I ordered a pair of running shoes last Tuesday and the tracking page still says the "
    "parcel is waiting at the regional hub. ",
    "Could you tell me when it will be delivered? I need them before the race on Sunday morning. ",
    "The order number is 58213-A and the invoice was sent to the email address on my account. ",
    "If it is easier I can pick the parcel up at your store in the city centre on Friday after "
    "work. ",
    "Also, the size guide on the website says 42 but my usual size with other brands is 43, so "
    "please let me know whether I can still exchange them. ",
    "I tried calling the hotline twice but the line was busy both times. ",
    "Thank you very much for your help, and sorry for writing such a long message! ",
    "One more thing: the discount code SPRING15 was not applied at checkout even though it was "
    "valid until the end of the month. ",
    "Please reply here on WhatsApp, it is the easiest way to reach me during the day. ",
    "Best regards and have a nice day. ",
};

constexpr size_t text_target = 640; // body text length that brings the whole JSON to ~1 KB

} // namespace

webhook_factory::webhook_factory(webhook_mix mix)
    : mix_(std::move(mix)) {}

std::string webhook_factory::body(uint64_t seq) const {
  uint64_t r = splitmix64(seq ^ 0x5eedULL);
  size_t channel = r % mix_.phone_number_ids.size();
  uint64_t contact = (r >> 20) % mix_.contacts_per_channel;
  const auto& pnid = mix_.phone_number_ids[channel];

  char wa_id[16];
  std::snprintf(wa_id, sizeof wa_id, "%012llu",
                static_cast<unsigned long long>(491700000000ULL + contact));
  char wamid[96];
  std::snprintf(wamid, sizeof wamid, "wamid.HBgM%sFQIAEhgg%s%016llXAA==", wa_id,
                mix_.run_tag.c_str(), static_cast<unsigned long long>(seq));
  char ts[24];
  std::snprintf(ts, sizeof ts, "%llu", static_cast<unsigned long long>(1700000000ULL + seq / 1000));

  std::string out;
  out.reserve(1200);
  out += R"({"object":"whatsapp_business_account","entry":[{"id":"1)";
  out += pnid;
  out +=
      R"(","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"1555)";
  out += pnid.substr(pnid.size() > 7 ? pnid.size() - 7 : 0);
  out += R"(","phone_number_id":")";
  out += pnid;
  out += R"("},"contacts":[{"profile":{"name":")";
  out += names[contact % names.size()]; // a contact's profile name is stable, as on WhatsApp
  out += R"("},"wa_id":")";
  out += wa_id;
  out += R"("}],"messages":[{"from":")";
  out += wa_id;
  out += R"(","id":")";
  out += wamid;
  out += R"(","timestamp":")";
  out += ts;
  out += R"(","text":{"body":")";
  size_t start = out.size();
  for (size_t i = (r >> 40) % sentences.size(); out.size() - start < text_target; ++i)
    out += sentences[i % sentences.size()];
  out += R"("},"type":"text"}]},"field":"messages"}]}]})";
  return out;
}

std::string webhook_factory::request(uint64_t seq) const {
  auto b = body(seq);
  auto sig = crypto::hmac_sha256_hex(mix_.app_secret, b);
  std::string req;
  req.reserve(b.size() + 320);
  req += "POST /webhooks/whatsapp HTTP/1.1\r\n"
         "Host: 127.0.0.1\r\n"
         "User-Agent: facebookexternalua\r\n"
         "Accept: */*\r\n"
         "Content-Type: application/json\r\n"
         "X-Hub-Signature-256: sha256=";
  req += sig;
  req += "\r\nContent-Length: ";
  req += std::to_string(b.size());
  req += "\r\n\r\n";
  req += b;
  return req;
}

} // namespace parley::bench
