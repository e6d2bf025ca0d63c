#include "persistence/writer_routing.hpp"

#include <memory>

#include "persistence/messages.hpp"

namespace parley::persistence {

writer_routing::writer_routing(std::map<std::string, size_t> pinned)
    : pinned_(std::move(pinned)) {}

writer_routing::writer_routing(const writer_routing& other)
    : pinned_(other.pinned_) {}

size_t writer_routing::pick(const std::string& kind, size_t writers) {
  if (auto it = pinned_.find(kind); it != pinned_.end())
    return it->second % writers;
  return next(writers);
}

size_t writer_routing::next(size_t writers) {
  return turn_.fetch_add(1, std::memory_order_relaxed) % writers;
}

caf::actor_pool::policy writer_routing::policy() const {
  // The pool copies its policy; the routing state is shared by the copies.
  auto routing = std::make_shared<writer_routing>(*this);
  return [routing](caf::actor_system&, caf::actor_pool::uplock& guard,
                   const caf::actor_pool::actor_vec& workers, caf::mailbox_element_ptr& msg,
                   caf::execution_unit* host) {
    const auto& content = msg->content();
    size_t i = content.size() == 2 && content.match_element<write_op>(1)
                   ? routing->pick(content.get_as<write_op>(1).kind, workers.size())
                   : routing->next(workers.size());
    auto selected = workers[i];
    guard.unlock();
    selected->enqueue(std::move(msg), host);
  };
}

} // namespace parley::persistence
