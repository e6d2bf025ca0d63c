#pragma once
// Signed WhatsApp Cloud API webhook requests, as Meta would send them: one inbound text message
// per body (~1 KB), a unique wamid each, spread over many channels and contacts. Built from a
// template with plain string appends so that making one costs a few microseconds (the HMAC
// dominates) and the load generator can make them as it sends.
#include <cstdint>
#include <string>
#include <vector>

namespace parley::bench {

struct webhook_mix {
  std::vector<std::string> phone_number_ids; ///< one per channel, all registered on the server
  uint32_t contacts_per_channel = 10000;     ///< wa_ids are drawn from this many per channel
  std::string app_secret;                    ///< the platform secret (X-Hub-Signature-256)
  std::string run_tag;                       ///< makes wamids unique across runs and databases
};

class webhook_factory {
public:
  explicit webhook_factory(webhook_mix mix);

  /// The JSON body of webhook number `seq`: same seq, same body.
  std::string body(uint64_t seq) const;

  /// The whole HTTP/1.1 request (keep-alive) carrying body(seq), signed.
  std::string request(uint64_t seq) const;

private:
  webhook_mix mix_;
};

} // namespace parley::bench
