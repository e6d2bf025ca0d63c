#pragma once
// A tiny blocking HTTP/1.1 client over a raw loopback socket. Raw on purpose: tests must be able
// to send malformed, oversized and deliberately slow requests, which a real client refuses to.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace parley::http::test {

struct reply {
  int status = 0;
  std::map<std::string, std::string> headers; ///< lower-case names
  std::string body;

  std::string header(const std::string& lower) const {
    auto it = headers.find(lower);
    return it == headers.end() ? std::string{} : it->second;
  }
};

class raw_client {
public:
  /// Connects to 127.0.0.1:port. Every read gives up after `recv_timeout`, so a broken server
  /// fails the test instead of hanging it.
  explicit raw_client(uint16_t port,
                      std::chrono::milliseconds recv_timeout = std::chrono::milliseconds(5000)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{};
    tv.tv_sec = recv_timeout.count() / 1000;
    tv.tv_usec = (recv_timeout.count() % 1000) * 1000;
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~raw_client() {
    if (fd_ >= 0)
      ::close(fd_);
  }
  raw_client(const raw_client&) = delete;
  raw_client& operator=(const raw_client&) = delete;

  bool connected() const { return connected_; }

  /// Sends everything; false if the peer is gone.
  bool send(std::string_view data) {
    while (!data.empty()) {
      auto n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0)
        return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  /// Reads one response (Content-Length framed, as the server always sends); nullopt on EOF,
  /// reset or timeout. `headers_only`: the answer to a HEAD request, whose Content-Length
  /// describes a body that is not sent.
  std::optional<reply> read_reply(bool headers_only = false) {
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos)
      if (!fill())
        return std::nullopt;
    reply r;
    std::string_view head(buf_.data(), end);
    auto line_end = head.find("\r\n");
    auto status_line = head.substr(0, line_end);
    auto sp = status_line.find(' ');
    if (sp == std::string_view::npos)
      return std::nullopt;
    r.status = std::stoi(std::string(status_line.substr(sp + 1, 3)));
    while (line_end != std::string_view::npos) {
      head.remove_prefix(line_end + 2);
      line_end = head.find("\r\n");
      auto line = head.substr(0, line_end);
      auto colon = line.find(':');
      if (colon == std::string_view::npos)
        continue;
      std::string name(line.substr(0, colon));
      for (auto& c : name)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      auto value = line.substr(colon + 1);
      while (!value.empty() && value.front() == ' ')
        value.remove_prefix(1);
      r.headers[name] = std::string(value);
    }
    buf_.erase(0, end + 4);
    size_t len = r.headers.count("content-length") ? std::stoul(r.headers["content-length"]) : 0;
    if (headers_only)
      len = 0;
    while (buf_.size() < len)
      if (!fill())
        return std::nullopt;
    r.body = buf_.substr(0, len);
    buf_.erase(0, len);
    return r;
  }

  /// Sends a request and reads its response.
  std::optional<reply> roundtrip(std::string_view raw, bool headers_only = false) {
    if (!send(raw))
      return std::nullopt;
    return read_reply(headers_only);
  }

  /// Reads until `marker` has arrived; returns everything up to and including it (consumed), or
  /// nullopt on EOF, reset or timeout first.
  std::optional<std::string> read_until(std::string_view marker) {
    size_t at;
    while ((at = buf_.find(marker)) == std::string::npos)
      if (!fill())
        return std::nullopt;
    auto out = buf_.substr(0, at + marker.size());
    buf_.erase(0, at + marker.size());
    return out;
  }

  /// True if the server closes the connection (EOF or reset) before the receive timeout,
  /// discarding anything else it sends.
  bool closed_by_peer() {
    char tmp[4096];
    for (;;) {
      auto n = ::recv(fd_, tmp, sizeof tmp, 0);
      if (n == 0)
        return true;
      if (n < 0)
        return errno == ECONNRESET;
    }
  }

private:
  bool fill() {
    char tmp[16384];
    auto n = ::recv(fd_, tmp, sizeof tmp, 0);
    if (n <= 0)
      return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buf_;
};

/// "GET /path HTTP/1.1" with Host and the given extra header lines (each ending in \r\n).
inline std::string get(std::string_view target, std::string_view extra = {}) {
  return "GET " + std::string(target) + " HTTP/1.1\r\nHost: t\r\n" + std::string(extra) + "\r\n";
}

inline std::string post(std::string_view target, std::string_view body,
                        std::string_view extra = {}) {
  return "POST " + std::string(target) +
         " HTTP/1.1\r\nHost: t\r\nContent-Length: " + std::to_string(body.size()) + "\r\n" +
         std::string(extra) + "\r\n" + std::string(body);
}

} // namespace parley::http::test
