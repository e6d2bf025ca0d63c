#include "runtime/deadline_book.hpp"

#include <vector>

#include <caf/sec.hpp>

namespace parley::runtime {

void deadline_book::track(caf::event_based_actor* self, caf::message_id id, time_point due) {
  due_[id.integer_value()] = due;
  if (!ticking_) {
    ticking_ = true;
    self->delayed_send(self, resolution_, deadline_tick_atom::value);
  }
}

void deadline_book::on_tick(caf::event_based_actor* self) {
  ticking_ = false;
  auto now = self->clock().now();
  std::vector<uint64_t> expired;
  for (const auto& [id, due] : due_)
    if (due <= now)
      expired.push_back(id);
  for (auto id : expired) {
    due_.erase(id);
    // What CAF's clock does at a request's timeout: the error arrives as the answer, so the
    // request's error handler runs and a late real answer finds no handler and is dropped.
    self->eq_impl(caf::message_id{id}, nullptr, self->context(),
                  caf::make_error(caf::sec::request_timeout));
  }
  if (!due_.empty()) {
    ticking_ = true;
    self->delayed_send(self, resolution_, deadline_tick_atom::value);
  }
}

} // namespace parley::runtime
