#pragma once
// Structured JSON logs: one line per event with ts, level, logger, msg and the event's fields
// (tenant_id, conversation_id, request_id, ...). One named logger per module.
#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>

namespace parley::log {

/// Configures every logger to write JSON lines to stderr at `level` (trace..off). Call once.
void init(std::string_view level);

/// A module's logger; cheap to copy. Fields are only formatted when the level is enabled.
class logger {
public:
  explicit logger(std::string name);

  void debug(std::string_view msg, const nlohmann::json& fields = {}) const;
  void info(std::string_view msg, const nlohmann::json& fields = {}) const;
  void warn(std::string_view msg, const nlohmann::json& fields = {}) const;
  void error(std::string_view msg, const nlohmann::json& fields = {}) const;

private:
  void write(spdlog::level::level_enum lvl, std::string_view msg,
             const nlohmann::json& fields) const;
  std::shared_ptr<spdlog::logger> impl_;
  std::string name_;
};

} // namespace parley::log
