#include "actors/edge/actor_status.hpp"

#include <caf/actor_cast.hpp>
#include <caf/event_based_actor.hpp>

#include <caf/sec.hpp>

#include "runtime/atoms.hpp"

namespace parley::edge {

void collect_actor_status(const context_ptr& ctx, std::function<void(nlohmann::json)> done) {
  auto entries = ctx->tree->snapshot();
  auto now = std::chrono::steady_clock::now();
  auto out = std::make_shared<nlohmann::json>(nlohmann::json::array());
  std::vector<caf::actor> handles;
  for (const auto& e : entries) {
    auto path = e.info.path();
    out->push_back(
        {{"kind", e.info.kind},
         {"id", e.info.id},
         {"path", path},
         {"parent",
          e.info.parent.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.info.parent)},
         {"restarts", e.restarts},
         {"uptime_s", std::chrono::duration_cast<std::chrono::seconds>(now - e.started).count()},
         {"state", "unresponsive"},
         {"mailbox", nullptr},
         {"idle_ms", nullptr}});
    handles.push_back(caf::actor_cast<caf::actor>(e.handle));
  }
  // `handles` is a spawn argument, not a capture: CAF 0.17 dereferences a null argument tuple
  // when a function actor is spawned without arguments.
  ctx->sys->spawn(
      [out, done](caf::event_based_actor* self, std::vector<caf::actor> handles) {
        auto pending = std::make_shared<size_t>(handles.size());
        auto finish = [out, done] {
          nlohmann::json result{{"count", out->size()}, {"actors", *out}};
          done(std::move(result));
        };
        if (*pending == 0) {
          finish();
          self->quit();
          return;
        }
        for (size_t i = 0; i < handles.size(); ++i) {
          auto step = [self, pending, finish] {
            if (--*pending == 0) {
              finish();
              self->quit();
            }
          };
          auto kind = (*out)[i]["kind"].get<std::string>();
          if (kind == "db_pool" || kind == "db_writer") {
            // Detached persistence actors have no status protocol; they are alive while listed.
            (*out)[i]["state"] = "running";
            step();
            continue;
          }
          if (!handles[i]) {
            (*out)[i]["state"] = "terminated";
            step();
            continue;
          }
          self->request(handles[i], std::chrono::seconds(1), status_atom::value)
              .then(
                  [out, i, step](nlohmann::json& st) {
                    for (auto it = st.begin(); it != st.end(); ++it)
                      (*out)[i][it.key()] = it.value();
                    step();
                  },
                  [out, i, step](caf::error& err) {
                    // An actor without a status protocol (a pool worker) is alive; only a timeout
                    // means it is stuck.
                    if (err != caf::sec::request_timeout)
                      (*out)[i]["state"] = "running";
                    step();
                  });
        }
      },
      std::move(handles));
}

} // namespace parley::edge
