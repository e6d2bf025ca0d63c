#pragma once
// A loopback TCP proxy that can be switched off and on again: the test's stand-in for a database
// that goes away (connections cut, new ones refused) and comes back on the same address.
#include <atomic>
#include <cerrno>
#include <memory>
#include <mutex>
#include <optional>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "persistence/connection.hpp"

namespace parley::test {

class tcp_proxy {
public:
  explicit tcp_proxy(uint16_t target_port)
      : target_port_(target_port) {
    start();
  }
  ~tcp_proxy() { stop(); }
  tcp_proxy(const tcp_proxy&) = delete;
  tcp_proxy& operator=(const tcp_proxy&) = delete;

  uint16_t port() const { return port_; }

  /// Listens again on the same port (the first call picks a free one).
  void start() {
    listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    auto addr = loopback(port_);
    if (::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(listener_, 64) != 0)
      throw std::runtime_error("tcp_proxy: cannot listen");
    socklen_t len = sizeof(addr);
    ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    running_ = true;
    acceptor_ = std::thread([this] { accept_loop(); });
  }

  /// Closes the listener and cuts every proxied connection.
  void stop() {
    if (!running_.exchange(false))
      return;
    acceptor_.join();
    ::close(listener_);
    std::vector<std::thread> pumps;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      for (int fd : fds_)
        ::shutdown(fd, SHUT_RDWR);
      pumps.swap(pumps_);
    }
    for (auto& t : pumps)
      t.join();
    std::lock_guard<std::mutex> guard{mtx_};
    for (int fd : fds_)
      ::close(fd);
    fds_.clear();
  }

private:
  static sockaddr_in loopback(uint16_t port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
  }

  void accept_loop() {
    while (running_) {
      pollfd p{listener_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0)
        continue;
      int client = ::accept(listener_, nullptr, nullptr);
      if (client < 0)
        continue;
      int upstream = ::socket(AF_INET, SOCK_STREAM, 0);
      auto addr = loopback(target_port_);
      if (::connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        ::close(client);
        ::close(upstream);
        continue;
      }
      std::lock_guard<std::mutex> guard{mtx_};
      fds_.push_back(client);
      fds_.push_back(upstream);
      pumps_.emplace_back([this, client, upstream] { pump(client, upstream); });
    }
  }

  void pump(int a, int b) {
    char buf[16384];
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    while (running_) {
      if (::poll(p, 2, 50) <= 0)
        continue;
      for (int i = 0; i < 2; ++i) {
        if (p[i].revents == 0)
          continue;
        auto n = ::read(p[i].fd, buf, sizeof(buf));
        if (n <= 0) {
          ::shutdown(a, SHUT_RDWR);
          ::shutdown(b, SHUT_RDWR);
          return;
        }
        for (ssize_t off = 0; off < n;) {
          auto w = ::send(p[1 - i].fd, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
          if (w <= 0)
            return;
          off += w;
        }
      }
    }
  }

  uint16_t target_port_;
  uint16_t port_ = 0;
  int listener_ = -1;
  std::atomic<bool> running_{false};
  std::thread acceptor_;
  std::mutex mtx_;
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
};

/// A proxy in front of the server of `admin_url` and the URL of `dbname` through it, or nothing
/// when `admin_url` does not name 127.0.0.1 or localhost with an explicit port.
struct proxied_database {
  std::unique_ptr<tcp_proxy> proxy;
  std::string url;
};

inline std::optional<proxied_database> proxy_database(const std::string& admin_url,
                                                      const std::string& dbname) {
  std::smatch m;
  static const std::regex host_port{
      R"(^(postgres(?:ql)?://(?:[^@/]*@)?)(127\.0\.0\.1|localhost):(\d+)(/.*)?$)"};
  if (!std::regex_match(admin_url, m, host_port))
    return std::nullopt;
  proxied_database out;
  out.proxy = std::make_unique<tcp_proxy>(static_cast<uint16_t>(std::stoi(m[3])));
  out.url = persistence::with_database(
      m[1].str() + "127.0.0.1:" + std::to_string(out.proxy->port()) + m[4].str(), dbname);
  return out;
}

} // namespace parley::test
