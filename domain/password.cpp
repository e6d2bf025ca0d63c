#include "domain/password.hpp"

#include <stdexcept>
#include <vector>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "domain/crypto.hpp"

namespace parley::password {

namespace {

constexpr std::string_view scheme = "scrypt";
constexpr size_t salt_size = 16;
constexpr size_t hash_size = 32;
constexpr uint64_t max_memory = 256ull << 20;

bool in_bounds(const scrypt_params& p) {
  if (p.log_n < 1 || p.log_n > 20 || p.r < 1 || p.r > 32 || p.p < 1 || p.p > 16)
    return false;
  uint64_t n = uint64_t{1} << p.log_n;
  return 128ull * static_cast<uint64_t>(p.r) * (n + static_cast<uint64_t>(p.p)) <= max_memory;
}

std::optional<std::string> derive(std::string_view password, std::string_view salt,
                                  const scrypt_params& p) {
  std::string out(hash_size, '\0');
  uint64_t n = uint64_t{1} << p.log_n;
  // maxmem must cover V (128 * r * N) plus B (128 * r * p); the bounds above keep both small.
  uint64_t maxmem =
      128ull * static_cast<uint64_t>(p.r) * (n + static_cast<uint64_t>(p.p) + 2) + (1u << 20);
  if (EVP_PBE_scrypt(password.data(), password.size(),
                     reinterpret_cast<const unsigned char*>(salt.data()), salt.size(), n,
                     static_cast<uint64_t>(p.r), static_cast<uint64_t>(p.p), maxmem,
                     reinterpret_cast<unsigned char*>(out.data()), out.size()) != 1)
    return std::nullopt;
  return out;
}

bool parse_int(std::string_view s, int& out) {
  if (s.empty() || s.size() > 3)
    return false;
  int v = 0;
  for (char c : s) {
    if (c < '0' || c > '9')
      return false;
    v = v * 10 + (c - '0');
  }
  out = v;
  return true;
}

struct parsed {
  scrypt_params params;
  std::string salt;
  std::string hash;
};

std::optional<parsed> parse(std::string_view encoded) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (parts.size() < 7) {
    auto dollar = encoded.find('$', start);
    parts.push_back(encoded.substr(start, dollar - start));
    if (dollar == std::string_view::npos)
      break;
    start = dollar + 1;
  }
  if (parts.size() != 6 || parts[0] != scheme)
    return std::nullopt;
  parsed out;
  if (!parse_int(parts[1], out.params.log_n) || !parse_int(parts[2], out.params.r) ||
      !parse_int(parts[3], out.params.p) || !in_bounds(out.params))
    return std::nullopt;
  auto salt = crypto::base64url_decode(parts[4]);
  auto hash = crypto::base64url_decode(parts[5]);
  if (!salt || !hash || salt->empty() || hash->size() != hash_size)
    return std::nullopt;
  out.salt = std::move(*salt);
  out.hash = std::move(*hash);
  return out;
}

} // namespace

std::string hash(std::string_view password, const scrypt_params& params) {
  if (!in_bounds(params))
    throw std::invalid_argument("scrypt parameters out of bounds");
  auto salt = crypto::random_bytes(salt_size);
  auto derived = derive(password, salt, params);
  if (!derived)
    throw std::runtime_error("crypto: scrypt failed");
  auto out = std::string(scheme) + "$" + std::to_string(params.log_n) + "$" +
             std::to_string(params.r) + "$" + std::to_string(params.p) + "$" +
             crypto::base64url_encode(salt) + "$" + crypto::base64url_encode(*derived);
  OPENSSL_cleanse(derived->data(), derived->size());
  return out;
}

bool verify(std::string_view password, std::string_view encoded) {
  auto stored = parse(encoded);
  if (!stored)
    return false;
  auto derived = derive(password, stored->salt, stored->params);
  if (!derived)
    return false;
  bool ok = crypto::constant_time_equal(*derived, stored->hash);
  OPENSSL_cleanse(derived->data(), derived->size());
  return ok;
}

std::optional<scrypt_params> params_of(std::string_view encoded) {
  auto stored = parse(encoded);
  if (!stored)
    return std::nullopt;
  return stored->params;
}

bool needs_rehash(std::string_view encoded, const scrypt_params& wanted) {
  auto p = params_of(encoded);
  return !p || p->log_n != wanted.log_n || p->r != wanted.r || p->p != wanted.p;
}

} // namespace parley::password
