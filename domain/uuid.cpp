#include "domain/uuid.hpp"

#include "domain/ids.hpp"

namespace parley::domain {

namespace {

int hex_value(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  return c - 'A' + 10; // is_uuid admitted only hex digits
}

bool dash_at(size_t i) {
  return i == 8 || i == 13 || i == 18 || i == 23;
}

} // namespace

std::optional<uuid> uuid::parse(std::string_view text) {
  if (!is_uuid(text))
    return std::nullopt;
  uuid u;
  size_t k = 0;
  for (size_t i = 0; i < text.size(); i += 2) {
    if (dash_at(i))
      ++i;
    u.bytes_[k++] = static_cast<uint8_t>(hex_value(text[i]) << 4 | hex_value(text[i + 1]));
  }
  return u;
}

std::string uuid::str() const {
  constexpr char digits[] = "0123456789abcdef";
  std::string out;
  out.reserve(36);
  for (size_t k = 0; k < bytes_.size(); ++k) {
    if (k == 4 || k == 6 || k == 8 || k == 10)
      out += '-';
    out += digits[bytes_[k] >> 4];
    out += digits[bytes_[k] & 0xF];
  }
  return out;
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
