#include "runtime/logging.hpp"

#include <chrono>
#include <mutex>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

namespace parley::log {

namespace {

std::string now_rfc3339() {
  using namespace std::chrono;
  auto now = system_clock::now();
  auto secs = time_point_cast<seconds>(now);
  auto micros = duration_cast<microseconds>(now - secs).count();
  std::time_t t = system_clock::to_time_t(secs);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[40];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
  char out[64];
  std::snprintf(out, sizeof(out), "%s.%06lldZ", buf, static_cast<long long>(micros));
  return out;
}

std::shared_ptr<spdlog::sinks::sink>& shared_sink() {
  static std::shared_ptr<spdlog::sinks::sink> sink = [] {
    auto s = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    s->set_pattern("%v"); // every line is already a complete JSON document
    return std::shared_ptr<spdlog::sinks::sink>(s);
  }();
  return sink;
}

spdlog::level::level_enum& global_level() {
  static spdlog::level::level_enum lvl = spdlog::level::info;
  return lvl;
}

} // namespace

void init(std::string_view level) {
  global_level() = spdlog::level::from_str(std::string{level});
  shared_sink()->set_pattern("%v");
  spdlog::apply_all([](const std::shared_ptr<spdlog::logger>& l) { l->set_level(global_level()); });
}

logger::logger(std::string name)
    : name_(std::move(name)) {
  impl_ = spdlog::get(name_);
  if (!impl_) {
    auto l = std::make_shared<spdlog::logger>(name_, shared_sink());
    l->set_level(global_level());
    l->flush_on(spdlog::level::warn);
    try {
      spdlog::register_logger(l);
      impl_ = l;
    } catch (const spdlog::spdlog_ex&) {
      impl_ = spdlog::get(name_); // registered concurrently by another thread
    }
  }
}

void logger::write(spdlog::level::level_enum lvl, std::string_view msg,
                   const nlohmann::json& fields) const {
  if (!impl_->should_log(lvl))
    return;
  nlohmann::json line = nlohmann::json::object();
  line["ts"] = now_rfc3339();
  line["level"] = spdlog::level::to_string_view(lvl).data();
  line["logger"] = name_;
  line["msg"] = msg;
  if (fields.is_object())
    for (auto it = fields.begin(); it != fields.end(); ++it)
      line[it.key()] = it.value();
  impl_->log(lvl, "{}", line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void logger::debug(std::string_view m, const nlohmann::json& f) const {
  write(spdlog::level::debug, m, f);
}
void logger::info(std::string_view m, const nlohmann::json& f) const {
  write(spdlog::level::info, m, f);
}
void logger::warn(std::string_view m, const nlohmann::json& f) const {
  write(spdlog::level::warn, m, f);
}
void logger::error(std::string_view m, const nlohmann::json& f) const {
  write(spdlog::level::err, m, f);
}

} // namespace parley::log
