#include "persistence/writer_routing.hpp"

#include <functional>
#include <memory>

#include "persistence/messages.hpp"

namespace parley::persistence {

writer_routing::writer_routing(std::map<std::string, place> pinned)
    : pinned_(std::move(pinned)) {}

writer_routing::writer_routing(const writer_routing& other)
    : pinned_(other.pinned_) {}

size_t writer_routing::pick(const std::string& kind, std::string_view tenant_id, size_t writers) {
  auto it = pinned_.find(kind);
  if (it == pinned_.end())
    return next(writers);
  const auto& p = it->second;
  size_t offset = p.count > 1 ? std::hash<std::string_view>{}(tenant_id) % p.count : 0;
  return (p.first + offset) % writers;
}

size_t writer_routing::next(size_t writers) {
  return turn_.fetch_add(1, std::memory_order_relaxed) % writers;
}

size_t writer_routing::next_for(const caf::type_erased_tuple& content, size_t writers) {
  if (content.size() != 2 || !content.match_element<write_op>(1))
    return next(writers);
  const auto& op = content.get_as<write_op>(1);
  auto it = pinned_.find(op.kind);
  if (it == pinned_.end())
    return next(writers);
  // The row's tenant only matters where the kind spreads over several writers.
  std::string_view tenant;
  if (it->second.count > 1)
    if (auto t = op.row.find("tenant_id"); t != op.row.end() && t->is_string())
      tenant = t->get_ref<const std::string&>();
  return pick(op.kind, tenant, writers);
}

caf::actor_pool::policy writer_routing::policy() const {
  // The pool copies its policy; the routing state is shared by the copies.
  auto routing = std::make_shared<writer_routing>(*this);
  return [routing](caf::actor_system&, caf::actor_pool::uplock& guard,
                   const caf::actor_pool::actor_vec& workers, caf::mailbox_element_ptr& msg,
                   caf::execution_unit* host) {
    const auto& content = msg->content();
    size_t i = routing->next_for(content, workers.size());
    auto selected = workers[i];
    guard.unlock();
    selected->enqueue(std::move(msg), host);
  };
}

} // namespace parley::persistence
