#include "domain/jwt.hpp"

#include "domain/crypto.hpp"

namespace parley::jwt {

namespace {

std::optional<nlohmann::json> decode_object(std::string_view part) {
  auto raw = crypto::base64url_decode(part);
  if (!raw)
    return std::nullopt;
  auto doc = nlohmann::json::parse(*raw, nullptr, /*allow_exceptions=*/false);
  if (!doc.is_object())
    return std::nullopt;
  return doc;
}

std::optional<int64_t> numeric_date(const nlohmann::json& claims, const char* name) {
  auto it = claims.find(name);
  if (it == claims.end() || !it->is_number())
    return std::nullopt;
  if (it->is_number_float()) {
    double v = it->get<double>();
    if (!(v > -1e15 && v < 1e15)) // NaN and absurd values are not dates
      return std::nullopt;
    return static_cast<int64_t>(v);
  }
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return std::nullopt;
  return it->get<int64_t>();
}

bool audience_matches(const nlohmann::json& aud, const std::string& want) {
  if (aud.is_string())
    return aud.get<std::string>() == want;
  if (aud.is_array())
    for (const auto& a : aud)
      if (a.is_string() && a.get<std::string>() == want)
        return true;
  return false;
}

verified refuse(failure f) {
  verified v;
  v.reason = f;
  return v;
}

} // namespace

std::string_view to_string(failure f) {
  switch (f) {
  case failure::malformed:
    return "malformed";
  case failure::wrong_algorithm:
    return "wrong_algorithm";
  case failure::bad_signature:
    return "bad_signature";
  case failure::expired:
    return "expired";
  case failure::not_yet_valid:
    return "not_yet_valid";
  case failure::wrong_issuer:
    return "wrong_issuer";
  case failure::wrong_audience:
    return "wrong_audience";
  }
  return "unknown";
}

std::string sign_hs256(const nlohmann::json& claims, std::string_view secret) {
  static const std::string header = crypto::base64url_encode(R"({"alg":"HS256","typ":"JWT"})");
  std::string input = header + "." + crypto::base64url_encode(claims.dump());
  return input + "." + crypto::base64url_encode(crypto::hmac_sha256(secret, input));
}

bool looks_like_jwt(std::string_view token) {
  auto first = token.find('.');
  if (first == std::string_view::npos || first == 0)
    return false;
  auto second = token.find('.', first + 1);
  return second != std::string_view::npos && second > first + 1 && second + 1 < token.size() &&
         token.find('.', second + 1) == std::string_view::npos;
}

verified verify_hs256(std::string_view token, std::string_view secret, const expectations& want) {
  if (token.size() > want.max_length || !looks_like_jwt(token))
    return refuse(failure::malformed);
  auto first = token.find('.');
  auto second = token.find('.', first + 1);
  auto header = decode_object(token.substr(0, first));
  if (!header)
    return refuse(failure::malformed);
  // The algorithm is ours to choose: anything but exactly HS256 is refused, and so is a header
  // demanding extensions we do not implement.
  auto alg = header->find("alg");
  if (alg == header->end() || !alg->is_string() || alg->get<std::string>() != "HS256" ||
      header->contains("crit"))
    return refuse(failure::wrong_algorithm);
  auto sig = crypto::base64url_decode(token.substr(second + 1));
  if (!sig)
    return refuse(failure::malformed);
  auto expected = crypto::hmac_sha256(secret, token.substr(0, second));
  if (!crypto::constant_time_equal(*sig, expected))
    return refuse(failure::bad_signature);
  auto claims = decode_object(token.substr(first + 1, second - first - 1));
  if (!claims)
    return refuse(failure::malformed);

  auto exp = numeric_date(*claims, "exp");
  if (!exp || want.now >= *exp + want.leeway_s)
    return refuse(failure::expired);
  if (claims->contains("nbf")) {
    auto nbf = numeric_date(*claims, "nbf");
    if (!nbf || *nbf > want.now + want.leeway_s)
      return refuse(failure::not_yet_valid);
  }
  if (claims->contains("iat")) {
    auto iat = numeric_date(*claims, "iat");
    if (!iat || *iat > want.now + want.leeway_s)
      return refuse(failure::not_yet_valid);
  }
  auto iss = claims->find("iss");
  if (iss == claims->end() || !iss->is_string() || iss->get<std::string>() != want.issuer)
    return refuse(failure::wrong_issuer);
  auto aud = claims->find("aud");
  if (aud == claims->end() || !audience_matches(*aud, want.audience))
    return refuse(failure::wrong_audience);
  verified v;
  v.claims = std::move(*claims);
  return v;
}

} // namespace parley::jwt
