#include "domain/crypto.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <memory>
#include <stdexcept>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>

namespace parley::crypto {

namespace {

constexpr size_t nonce_size = 12;
constexpr size_t tag_size = 16;
constexpr size_t key_size = 32;
// Binds the ciphertext to its format version, so a future v2 box cannot be fed v1 data.
constexpr std::string_view sealed_aad = "parley.secret_box.v1";
constexpr std::string_view meta_prefix = "sha256=";

[[noreturn]] void fail(const char* what) {
  throw std::runtime_error(std::string("crypto: ") + what);
}

// Explicit fetches are much cheaper than OpenSSL 3's implicit per-call lookups. The fetched
// objects are immutable and thread-safe; they are intentionally never freed, because static
// destructors could run after OpenSSL's own atexit cleanup.
const EVP_MD* sha256_md() {
  static const EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  if (md == nullptr)
    fail("SHA256 unavailable");
  return md;
}

// A keyless HMAC-SHA256 context to copy from: duplicating it skips the digest look-up that
// EVP_MAC_init with parameters does on every call (about 20% of a 1 KB webhook's HMAC).
// EVP_MAC_CTX_dup only reads its source, so concurrent callers may share the template.
const EVP_MAC_CTX* hmac_sha256_template() {
  static const EVP_MAC_CTX* tmpl = [] {
    EVP_MAC* mac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = mac != nullptr ? EVP_MAC_CTX_new(mac) : nullptr;
    EVP_MAC_free(mac); // the context holds its own reference
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end(),
    };
    if (ctx != nullptr && EVP_MAC_CTX_set_params(ctx, params) != 1) {
      EVP_MAC_CTX_free(ctx);
      ctx = nullptr;
    }
    return ctx;
  }();
  if (tmpl == nullptr)
    fail("HMAC-SHA256 unavailable");
  return tmpl;
}

const EVP_CIPHER* aes_gcm() {
  static const EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  if (cipher == nullptr)
    fail("AES-256-GCM unavailable");
  return cipher;
}

struct mac_ctx_free {
  void operator()(EVP_MAC_CTX* p) const { EVP_MAC_CTX_free(p); }
};
struct cipher_ctx_free {
  void operator()(EVP_CIPHER_CTX* p) const { EVP_CIPHER_CTX_free(p); }
};
using mac_ctx_ptr = std::unique_ptr<EVP_MAC_CTX, mac_ctx_free>;
using cipher_ctx_ptr = std::unique_ptr<EVP_CIPHER_CTX, cipher_ctx_free>;

const unsigned char* bytes(std::string_view s) {
  return reinterpret_cast<const unsigned char*>(s.data());
}

unsigned char* bytes(std::string& s) {
  return reinterpret_cast<unsigned char*>(s.data());
}

std::array<unsigned char, 32> hmac_sha256_raw(std::string_view key, std::string_view data) {
  mac_ctx_ptr ctx(EVP_MAC_CTX_dup(hmac_sha256_template()));
  if (!ctx)
    fail("EVP_MAC_CTX_dup failed");
  // OpenSSL rejects a null key pointer even for length 0; an empty key is still a valid HMAC key.
  static const unsigned char empty = 0;
  const unsigned char* key_ptr = key.empty() ? &empty : bytes(key);
  std::array<unsigned char, 32> out{};
  size_t out_len = 0;
  if (EVP_MAC_init(ctx.get(), key_ptr, key.size(), nullptr) != 1 ||
      EVP_MAC_update(ctx.get(), bytes(data), data.size()) != 1 ||
      EVP_MAC_final(ctx.get(), out.data(), &out_len, out.size()) != 1 || out_len != out.size())
    fail("HMAC-SHA256 failed");
  return out;
}

std::string as_string(const unsigned char* p, size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

int hex_value(char ch) {
  if (ch >= '0' && ch <= '9')
    return ch - '0';
  if (ch >= 'a' && ch <= 'f')
    return ch - 'a' + 10;
  if (ch >= 'A' && ch <= 'F')
    return ch - 'A' + 10;
  return -1;
}

constexpr std::string_view b64_std =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::string_view b64_url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string b64_encode(std::string_view in, std::string_view alphabet, bool pad) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    uint32_t v = (uint32_t(uint8_t(in[i])) << 16) | (uint32_t(uint8_t(in[i + 1])) << 8) |
                 uint32_t(uint8_t(in[i + 2]));
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    out += alphabet[(v >> 6) & 63];
    out += alphabet[v & 63];
  }
  size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t(uint8_t(in[i])) << 16;
    if (rest == 2)
      v |= uint32_t(uint8_t(in[i + 1])) << 8;
    out += alphabet[(v >> 18) & 63];
    out += alphabet[(v >> 12) & 63];
    if (rest == 2)
      out += alphabet[(v >> 6) & 63];
    if (pad)
      out.append(3 - rest, '=');
  }
  return out;
}

// Strict on purpose: every sealed value and token has exactly one accepted spelling, so
// comparisons on encoded forms stay meaningful and malformed input is refused early.
std::optional<std::string> b64_decode(std::string_view in, std::string_view alphabet, bool pad) {
  if (pad) {
    if (in.size() % 4 != 0)
      return std::nullopt;
    size_t pads = 0;
    while (pads < 2 && pads < in.size() && in[in.size() - 1 - pads] == '=')
      ++pads;
    in.remove_suffix(pads);
    if (pads > 0 && in.size() % 4 != 4 - pads)
      return std::nullopt;
  }
  if (in.size() % 4 == 1)
    return std::nullopt;
  std::array<int, 256> table;
  table.fill(-1);
  for (size_t k = 0; k < alphabet.size(); ++k)
    table[static_cast<unsigned char>(alphabet[k])] = static_cast<int>(k);

  std::string out;
  out.reserve(in.size() / 4 * 3 + 2);
  uint32_t acc = 0;
  int bits = 0;
  for (char ch : in) {
    int v = table[static_cast<unsigned char>(ch)];
    if (v < 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0)
    return std::nullopt; // non-canonical: leftover bits must be zero
  return out;
}

} // namespace

std::string hmac_sha256(std::string_view key, std::string_view data) {
  auto raw = hmac_sha256_raw(key, data);
  return as_string(raw.data(), raw.size());
}

std::string hmac_sha256_hex(std::string_view key, std::string_view data) {
  auto raw = hmac_sha256_raw(key, data);
  return hex_encode(std::string_view(reinterpret_cast<const char*>(raw.data()), raw.size()));
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size())
    return false;
  if (a.empty())
    return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

bool verify_meta_signature(std::string_view app_secret, std::string_view raw_body,
                           std::string_view header_value) {
  if (app_secret.empty() || header_value.size() != meta_prefix.size() + 64 ||
      header_value.substr(0, meta_prefix.size()) != meta_prefix)
    return false;
  auto claimed = hex_decode(header_value.substr(meta_prefix.size()));
  if (!claimed)
    return false;
  auto actual = hmac_sha256_raw(app_secret, raw_body);
  return constant_time_equal(
      *claimed, std::string_view(reinterpret_cast<const char*>(actual.data()), actual.size()));
}

std::string sha256_hex(std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, sha256_md(), nullptr) != 1)
    fail("SHA-256 failed");
  return hex_encode(as_string(out, len));
}

void release_thread_state() {
  OPENSSL_thread_stop();
}

std::string random_bytes(size_t n) {
  std::string out(n, '\0');
  size_t done = 0;
  while (done < n) {
    int chunk = static_cast<int>(std::min<size_t>(n - done, INT_MAX));
    if (RAND_bytes(bytes(out) + done, chunk) != 1)
      fail("RAND_bytes failed");
    done += static_cast<size_t>(chunk);
  }
  return out;
}

std::string random_hex(size_t n_bytes) {
  return hex_encode(random_bytes(n_bytes));
}

std::string random_token(size_t n_bytes) {
  return base64url_encode(random_bytes(n_bytes));
}

std::string hex_encode(std::string_view in) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(in.size() * 2);
  for (unsigned char ch : in) {
    out += digits[ch >> 4];
    out += digits[ch & 0x0F];
  }
  return out;
}

std::optional<std::string> hex_decode(std::string_view hex) {
  if (hex.size() % 2 != 0)
    return std::nullopt;
  std::string out;
  out.reserve(hex.size() / 2);
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_value(hex[i]);
    int lo = hex_value(hex[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out += static_cast<char>((hi << 4) | lo);
  }
  return out;
}

std::string base64_encode(std::string_view in) {
  return b64_encode(in, b64_std, true);
}

std::optional<std::string> base64_decode(std::string_view text) {
  return b64_decode(text, b64_std, true);
}

std::string base64url_encode(std::string_view in) {
  return b64_encode(in, b64_url, false);
}

std::optional<std::string> base64url_decode(std::string_view text) {
  return b64_decode(text, b64_url, false);
}

secret_box::secret_box(std::string key32)
    : secret_box(1, std::move(key32), {}) {}

secret_box::secret_box(int version, std::string key32, const std::map<int, std::string>& previous)
    : version_(version) {
  auto add = [this](int v, std::string key) {
    if (key.size() != key_size) {
      auto n = key.size();
      OPENSSL_cleanse(key.data(), key.size());
      for (auto& [_, k] : keys_)
        OPENSSL_cleanse(k.data(), k.size());
      throw std::invalid_argument("secret_box: key version " + std::to_string(v) +
                                  " must be 32 bytes, got " + std::to_string(n));
    }
    if (v < 1 || !keys_.emplace(v, std::move(key)).second)
      throw std::invalid_argument("secret_box: key version " + std::to_string(v) +
                                  " is invalid or given twice");
  };
  add(version, std::move(key32));
  for (const auto& [v, key] : previous)
    add(v, key);
}

secret_box::~secret_box() {
  for (auto& [_, key] : keys_)
    if (!key.empty())
      OPENSSL_cleanse(key.data(), key.size());
}

std::optional<int> secret_box::version_of(std::string_view sealed) {
  if (sealed.size() < 3 || sealed[0] != 'v')
    return std::nullopt;
  int v = 0;
  size_t i = 1;
  for (; i < sealed.size() && i < 8 && sealed[i] >= '0' && sealed[i] <= '9'; ++i)
    v = v * 10 + (sealed[i] - '0');
  if (i == 1 || i >= sealed.size() || sealed[i] != ':' || v < 1 || (sealed[1] == '0'))
    return std::nullopt;
  return v;
}

std::string secret_box::seal(std::string_view plaintext) const {
  auto current = keys_.find(version_);
  if (current == keys_.end() || current->second.size() != key_size)
    fail("secret_box used after move");
  const std::string& key = current->second;
  std::string nonce = random_bytes(nonce_size);
  cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
  if (!ctx)
    fail("EVP_CIPHER_CTX_new failed");
  // nonce | ciphertext | tag, built in place; GCM ciphertext is as long as the plaintext.
  std::string blob(nonce_size + plaintext.size() + tag_size, '\0');
  std::copy(nonce.begin(), nonce.end(), blob.begin());
  unsigned char* ct = bytes(blob) + nonce_size;
  int len = 0;
  if (EVP_EncryptInit_ex2(ctx.get(), aes_gcm(), bytes(key), bytes(nonce), nullptr) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, bytes(sealed_aad),
                        static_cast<int>(sealed_aad.size())) != 1)
    fail("AES-GCM init failed");
  size_t written = 0;
  if (!plaintext.empty()) {
    if (plaintext.size() > INT_MAX || EVP_EncryptUpdate(ctx.get(), ct, &len, bytes(plaintext),
                                                        static_cast<int>(plaintext.size())) != 1)
      fail("AES-GCM encrypt failed");
    written = static_cast<size_t>(len);
  }
  if (EVP_EncryptFinal_ex(ctx.get(), ct + written, &len) != 1)
    fail("AES-GCM final failed");
  written += static_cast<size_t>(len);
  if (written != plaintext.size())
    fail("AES-GCM length mismatch");
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, ct + written, tag_size),
      OSSL_PARAM_construct_end(),
  };
  if (EVP_CIPHER_CTX_get_params(ctx.get(), params) != 1)
    fail("AES-GCM tag failed");
  return "v" + std::to_string(version_) + ":" + base64_encode(blob);
}

std::optional<std::string> secret_box::open(std::string_view sealed) const {
  auto version = version_of(sealed);
  if (!version)
    return std::nullopt;
  auto known = keys_.find(*version);
  if (known == keys_.end())
    return std::nullopt;
  if (known->second.size() != key_size)
    fail("secret_box used after move");
  const std::string& key = known->second;
  auto blob = base64_decode(sealed.substr(sealed.find(':') + 1));
  if (!blob || blob->size() < nonce_size + tag_size ||
      blob->size() - nonce_size - tag_size > INT_MAX)
    return std::nullopt;
  const size_t ct_size = blob->size() - nonce_size - tag_size;
  unsigned char* nonce = bytes(*blob);
  unsigned char* ct = nonce + nonce_size;
  unsigned char* tag = ct + ct_size;

  cipher_ctx_ptr ctx(EVP_CIPHER_CTX_new());
  if (!ctx)
    fail("EVP_CIPHER_CTX_new failed");
  std::string plain(ct_size, '\0');
  int len = 0;
  if (EVP_DecryptInit_ex2(ctx.get(), aes_gcm(), bytes(key), nonce, nullptr) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, bytes(sealed_aad),
                        static_cast<int>(sealed_aad.size())) != 1)
    return std::nullopt;
  size_t written = 0;
  if (ct_size > 0) {
    if (EVP_DecryptUpdate(ctx.get(), bytes(plain), &len, ct, static_cast<int>(ct_size)) != 1)
      return std::nullopt;
    written = static_cast<size_t>(len);
  }
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, tag_size),
      OSSL_PARAM_construct_end(),
  };
  // The tag check happens in DecryptFinal; until it passes, `plain` is unauthenticated.
  if (EVP_CIPHER_CTX_set_params(ctx.get(), params) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), bytes(plain) + written, &len) != 1) {
    OPENSSL_cleanse(plain.data(), plain.size());
    return std::nullopt;
  }
  return plain;
}

std::string generate_api_key() {
  return "pk_live_" + random_token(24);
}

std::string api_key_hash(std::string_view key) {
  return sha256_hex(key);
}

} // namespace parley::crypto
