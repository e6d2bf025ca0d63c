#include "domain/uuid.hpp"

#include <algorithm>

#include "domain/crypto.hpp"
#include "domain/ids.hpp"

namespace parley::domain {

std::optional<uuid> uuid::parse(std::string_view text) {
  if (!is_uuid(text))
    return std::nullopt;
  std::string digits;
  digits.reserve(32);
  for (char c : text)
    if (c != '-')
      digits += c;
  auto raw = crypto::hex_decode(digits); // is_uuid admitted only hex digits: never nullopt
  if (!raw || raw->size() != 16)
    return std::nullopt;
  uuid u;
  std::copy(raw->begin(), raw->end(), u.bytes_.begin());
  return u;
}

std::string uuid::str() const {
  auto hex = crypto::hex_encode(
      std::string_view(reinterpret_cast<const char*>(bytes_.data()), bytes_.size()));
  for (size_t at : std::array<size_t, 4>{8, 13, 18, 23}) // 8-4-4-4-12
    hex.insert(at, 1, '-');
  return hex;
}

size_t uuid::hash() const {
  uint64_t a = 0, b = 0;
  for (size_t k = 0; k < 8; ++k) {
    a = a << 8 | bytes_[k];
    b = b << 8 | bytes_[k + 8];
  }
  return static_cast<size_t>(a ^ (b * 0x9e3779b97f4a7c15ULL));
}

} // namespace parley::domain
