#include "bench/common/process.hpp"

#include <cerrno>
#include <csignal>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

namespace parley::bench {

namespace {

bool inherited(const std::string& entry) {
  auto name = entry.substr(0, entry.find('='));
  if (name.rfind("PARLEY_", 0) == 0) // the server refuses PARLEY_ variables it does not know
    return false;
  for (const char* proxy :
       {"http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"})
    if (name == proxy)
      return false;
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream in{path, std::ios::binary};
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

} // namespace

server_process::server_process(const std::string& bin,
                               const std::map<std::string, std::string>& env, std::string log_path)
    : log_path_(std::move(log_path)) {
  std::vector<std::string> env_entries;
  for (char** e = environ; *e; ++e)
    if (inherited(*e))
      env_entries.emplace_back(*e);
  for (const auto& [k, v] : env)
    env_entries.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (auto& e : env_entries)
    envp.push_back(e.data());
  envp.push_back(nullptr);

  std::string arg0 = bin, arg1 = "serve";
  char* argv[] = {arg0.data(), arg1.data(), nullptr};

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  int rc = posix_spawn(&pid_, bin.c_str(), &fa, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0)
    throw std::runtime_error("cannot start " + bin + ": " + std::strerror(rc));
}

server_process::~server_process() {
  if (pid_ > 0)
    stop(std::chrono::seconds(20));
}

uint16_t server_process::wait_listening(std::chrono::milliseconds timeout) {
  auto until = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < until) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("parley exited during start-up (status " + std::to_string(status) +
                               ")\n" + log_tail());
    }
    auto log = read_file(log_path_);
    auto at = log.find("\"msg\":\"listening\"");
    if (at != std::string::npos) {
      auto line_start = log.rfind('\n', at);
      line_start = line_start == std::string::npos ? 0 : line_start;
      auto line = log.substr(line_start, log.find('\n', at) - line_start);
      auto p = line.find("\"port\":");
      if (p != std::string::npos)
        return static_cast<uint16_t>(std::stoi(line.substr(p + 7)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error("parley did not log {\"msg\":\"listening\"} in time\n" + log_tail());
}

int server_process::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0)
    return -1;
  kill(pid_, SIGTERM);
  auto until = std::chrono::steady_clock::now() + timeout;
  int status = 0;
  while (std::chrono::steady_clock::now() < until) {
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return -1;
}

std::string server_process::log_tail(size_t lines) const {
  std::istringstream in{read_file(log_path_)};
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);)
    all.push_back(std::move(line));
  std::string out = "--- last lines of " + log_path_ + " ---\n";
  for (size_t i = all.size() > lines ? all.size() - lines : 0; i < all.size(); ++i)
    out += "  " + all[i] + "\n";
  return out;
}

double process_cpu_seconds(pid_t pid) {
  auto stat = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close = stat.rfind(')');
  if (close == std::string::npos)
    return 0;
  std::istringstream in{stat.substr(close + 2)};
  std::string field;
  // After "pid (comm) ": state is field 3; utime and stime are fields 14 and 15.
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && in >> field; ++i) {
    if (i == 14)
      utime = std::stoull(field);
    if (i == 15)
      stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

machine_cpu machine_cpu_seconds() {
  std::ifstream in{"/proc/stat"};
  std::string cpu;
  unsigned long long v[10] = {};
  in >> cpu;
  for (auto& x : v)
    in >> x;
  double tick = static_cast<double>(sysconf(_SC_CLK_TCK));
  unsigned long long idle = v[3] + v[4], total = 0;
  for (int i = 0; i < 8; ++i) // guest time is already counted in user
    total += v[i];
  return {static_cast<double>(total - idle) / tick, static_cast<double>(total) / tick,
          static_cast<double>(v[7]) / tick};
}

double load_average() {
  std::ifstream in{"/proc/loadavg"};
  double l = 0;
  in >> l;
  return l;
}

} // namespace parley::bench
