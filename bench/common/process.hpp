#pragma once
// The real `parley serve` as a child process for the benchmark: started with a clean environment
// plus the variables given, its stdout and stderr in a log file, the port it picked read from its
// {"msg":"listening","port":N} line, stopped with SIGTERM (SIGKILL only after a timeout).
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include <sys/types.h>

namespace parley::bench {

class server_process {
public:
  /// Starts `bin serve`. `env` is added to the caller's environment minus PARLEY_* and proxies.
  server_process(const std::string& bin, const std::map<std::string, std::string>& env,
                 std::string log_path);
  ~server_process();
  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  /// Waits for the listening line; throws with the log's tail if the server exits or is silent.
  uint16_t wait_listening(std::chrono::milliseconds timeout);

  /// SIGTERM, then waits; returns the exit status (128 + signal if killed, -1 if SIGKILLed).
  int stop(std::chrono::milliseconds timeout);

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  /// The last `lines` lines of the server's log.
  std::string log_tail(size_t lines = 20) const;

private:
  pid_t pid_ = -1;
  std::string log_path_;
};

/// CPU seconds (user + system) a process has used so far; 0 if it is gone.
double process_cpu_seconds(pid_t pid);

/// Busy and total CPU seconds of the whole machine so far (from /proc/stat).
struct machine_cpu {
  double busy = 0;
  double total = 0;
  /// Time the hypervisor gave this VM's CPUs to others (counted in busy): on a shared host it
  /// explains an "other" share that no process used.
  double steal = 0;
};
machine_cpu machine_cpu_seconds();

/// The 1-minute load average.
double load_average();

} // namespace parley::bench
