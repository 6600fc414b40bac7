#include "actors/ingress_pages.hpp"

#include <chrono>
#include <filesystem>
#include <limits>
#include <optional>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "base/log_book.hpp"
#include "base/log_tail.hpp"
#include "base/pages.hpp"
#include "base/text.hpp"

namespace heaven {

namespace {

using page = route_decision::page_kind;
using act = route_decision::action_kind;

/// The store answers long before this; a page that waits longer is 503.
constexpr auto store_timeout = std::chrono::seconds(9);

/// The most of a log a deployment's page shows (the rest is behind the raw
/// log link).
constexpr uint64_t max_log_bytes = 512 * 1024;

/// What an action's `?done=` says on the page it leads to.
std::string notice_of(std::string_view done) {
  if (done == "unlocked")
    return "The lock is removed.";
  if (done == "not-locked")
    return "That environment was not locked (any more).";
  if (done == "enabled")
    return "The repository is enabled: heaven acts on its events.";
  if (done == "disabled")
    return "The repository is disabled: heaven ignores its events.";
  if (done == "redeploy")
    return "GitHub is asked for a deployment of this sha; it appears in "
           "the list when GitHub sends it.";
  if (done == "rollback")
    return "GitHub is asked for a deployment rolling back to this one; it "
           "appears in the list when GitHub sends it.";
  return {};
}

void send_html(const header_reply_fn& reply, int status, std::string body) {
  reply(status, std::move(body), page_headers());
}

void see_other(const header_reply_fn& reply, std::string location) {
  reply(303, {}, {{"Location", std::move(location)}});
}

/// Asks the store from a short-lived actor; `then` gets its answer, an
/// error or a timeout is a 503 page. With `caf::detached`, the actor has a
/// thread of its own: for a `then` that reads files (a deployment's log),
/// which must not hold one of the scheduler's few threads.
template <class Answer, caf::spawn_options Os = caf::no_spawn_options,
          class Then, class... Ts>
void ask_store(caf::actor_system& sys, const store_actor& store,
               header_reply_fn reply, Then then, Ts... xs) {
  sys.spawn<Os>([=](caf::event_based_actor* self) mutable {
    self->request(store, store_timeout, std::move(xs)...)
      .then([then](Answer& answer) mutable { then(answer); },
            [reply, self](caf::error& err) {
              send_html(reply, 503,
                        pages::error_page(503, "heaven's store is unavailable: "
                                                 + self->system().render(err)));
            });
  });
}

pages::viewer viewer_of(const route_decision& r) {
  return {r.login, r.csrf};
}

/// The log as deployment `d`'s page shows it: from the log book's file,
/// or, when the logs are shared, from the store's `piece` (all of it, from
/// its start); then it is live while its deployment has not ended. Without
/// either, one that ended before it started shows the one line of its end
/// (see unstarted_log).
pages::log_view log_of(const page_setup& setup, const deployment_detail& d,
                       const log_piece* piece = nullptr) {
  if (!setup.logs)
    return {};
  auto id = d.row.id;
  std::optional<log_piece> line;
  std::error_code ec;
  if (piece ? !piece->found
            : !std::filesystem::exists(setup.logs->path(id), ec))
    line = unstarted_log(d, *setup.logs);
  if (line)
    piece = &*line;
  auto view = piece ? log_tail_of(piece->bytes, piece->times, max_log_bytes)
                    : read_log_tail(setup.logs->path(id),
                                    setup.logs->times_path(id), max_log_bytes);
  auto link = "/deployments/" + std::to_string(id)
              + "/log?token=" + log_token(setup.log_key, id);
  bool live = piece ? piece->found && !piece->ended : setup.logs->live(id);
  if (live)
    view.follow_url = link;
  if (!view.lines.empty() || live)
    view.raw_url = link;
  return view;
}

/// Deployment `d`'s page.
void send_deployment(const header_reply_fn& reply, const pages::viewer& who,
                     const pages::links& to, const std::string& said,
                     const page_setup& setup, const deployment_detail& d,
                     const pages::log_view& log) {
  auto logs = setup.logs;
  auto redact = [logs](std::string_view text) {
    return logs ? logs->redact(text) : std::string{text};
  };
  send_html(reply, 200, pages::deployment_page(who, to, d, log, redact, said));
}

void show(caf::actor_system& sys, const page_setup& setup, route_decision r,
          header_reply_fn reply) {
  pages::links to{setup.github_web};
  auto who = viewer_of(r);
  auto said = notice_of(r.done);
  switch (r.page) {
    case page::deployments: {
      // One more than shown says whether there is an older page.
      auto filter = r.filter;
      filter.limit = r.filter.limit + 1;
      return ask_store<std::vector<deployment_row>>(
        sys, setup.store, reply,
        [reply, who, to, said,
         f = r.filter](std::vector<deployment_row>& rows) {
          pages::list_view view;
          view.filter = f;
          if (rows.size() > static_cast<std::size_t>(f.limit)) {
            rows.resize(static_cast<std::size_t>(f.limit));
            view.next_before = rows.back().id;
          }
          view.rows = std::move(rows);
          send_html(reply, 200, pages::deployments_page(who, to, view, said));
        },
        list_atom::value, filter);
    }
    case page::deployment:
      // Reading the log's end and counting its lines reads the file.
      return ask_store<deployment_detail, caf::detached>(
        sys, setup.store, reply,
        [&sys, reply, who, to, said, setup](deployment_detail& d) {
          if (!d.found)
            return send_html(reply, 404,
                             pages::error_page(404, "There is no such "
                                                    "deployment."));
          if (!setup.logs || !setup.logs->shared())
            return send_deployment(reply, who, to, said, setup, d,
                                   log_of(setup, d));
          // Shared logs (several instances): the store has it, whichever
          // instance ran it. Its lines are numbered from its start.
          auto id = d.row.id;
          ask_store<log_piece>(
            sys, setup.store, reply,
            [reply, who, to, said, setup, d](log_piece& piece) {
              send_deployment(reply, who, to, said, setup, d,
                              log_of(setup, d, &piece));
            },
            log_atom::value, id, int64_t{0},
            std::numeric_limits<int64_t>::max());
        },
        detail_atom::value, r.deployment_id);
    case page::locks:
      return ask_store<std::vector<env_lock>>(
        sys, setup.store, reply,
        [reply, who, said](std::vector<env_lock>& locks) {
          send_html(reply, 200, pages::locks_page(who, locks, said));
        },
        locks_atom::value);
    case page::repositories:
      return ask_store<std::vector<repository_record>>(
        sys, setup.store, reply,
        [reply, who, said](std::vector<repository_record>& repos) {
          send_html(reply, 200, pages::repositories_page(who, repos, said));
        },
        repos_atom::value);
  }
}

void act_on(caf::actor_system& sys, const page_setup& setup, route_decision r,
            header_reply_fn reply) {
  switch (r.action) {
    case act::unlock:
      spdlog::info("{} unlocks {} {} from heaven's page", r.login, r.repo,
                   r.environment);
      return ask_store<bool>(
        sys, setup.store, reply,
        [reply](bool removed) {
          see_other(reply, std::string{"/ui/locks?done="}
                             + (removed ? "unlocked" : "not-locked"));
        },
        unlock_atom::value, r.repo, r.environment);
    case act::switch_repository:
      spdlog::info("{} {} {} from heaven's page", r.login,
                   r.active ? "enables" : "disables", r.repo);
      return ask_store<bool>(
        sys, setup.store, reply,
        [reply, active = r.active](bool) {
          see_other(reply, std::string{"/ui/repositories?done="}
                             + (active ? "enabled" : "disabled"));
        },
        switch_atom::value, r.repo, r.active);
    case act::redeploy:
    case act::rollback: {
      bool rollback = r.action == act::rollback;
      auto id = r.deployment_id;
      auto store = setup.store;
      return ask_store<deployment_detail>(
        sys, setup.store, reply,
        [&sys, store, reply, rollback, id,
         login = r.login](deployment_detail& d) {
          if (!d.found)
            return send_html(reply, 404,
                             pages::error_page(404, "There is no such "
                                                    "deployment."));
          if (d.row.finished_at.empty() || d.row.sha.empty()
              || !pages::is_deploy_task(d.row.task))
            return send_html(
              reply, 409,
              pages::error_page(409, "Only a deployment of code (a deploy "
                                     "task, not a lock) that has ended, of a "
                                     "known sha, can be deployed again."));
          auto_deployment x{d.row.repo, d.row.app, d.row.environment, d.row.sha,
                            redeploy_body(d, login, rollback)};
          spdlog::info(
            "{} asks for {} of {}@{} to {} ({}) from heaven's page", login,
            rollback ? "a roll back to deployment " + std::to_string(id)
                     : "a new deployment",
            d.row.repo, short_sha(d.row.sha, 8), d.row.environment, d.row.app);
          ask_store<bool>(
            sys, store, reply,
            [reply, rollback, id](bool) {
              see_other(reply,
                        "/ui/deployments/" + std::to_string(id)
                          + "?done=" + (rollback ? "rollback" : "redeploy"));
            },
            create_atom::value, std::move(x));
        },
        detail_atom::value, id);
    }
  }
}

} // namespace

std::string redeploy_body(const deployment_detail& d, const std::string& login,
                          bool rollback) {
  using nlohmann::json;
  auto payload = json::parse(d.request.payload_json, nullptr, false);
  if (!payload.is_object())
    payload = json::object();
  payload["actor"] = login;
  std::string description = rollback
                              ? "Roll back to deployment "
                                  + (d.row.github_id > 0
                                       ? std::to_string(d.row.github_id)
                                       : "#" + std::to_string(d.row.id))
                                  + " (" + short_sha(d.row.sha) + "), asked by "
                                  + login + " on heaven"
                              : "Deploy " + short_sha(d.row.sha)
                                  + " again, asked by " + login + " on heaven";
  json body = {{"ref", d.row.sha},
               {"environment", d.row.environment},
               {"task", d.row.task.empty() ? "deploy" : d.row.task},
               {"auto_merge", false},
               {"payload", std::move(payload)},
               {"description", std::move(description)}};
  return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

reply_fn plain(header_reply_fn reply) {
  return [reply = std::move(reply)](int status, std::string body) {
    reply(status, std::move(body), {});
  };
}

void answer_by_actors(caf::actor_system& sys, const page_setup& setup,
                      const sign_in_setup* sign_in, route_decision r,
                      header_reply_fn reply) {
  switch (r.what) {
    case route_decision::kind::list:
      return answer_list(sys, setup.store, r.limit, plain(std::move(reply)));
    case route_decision::kind::locks:
      return answer_locks(sys, setup.store, plain(std::move(reply)));
    case route_decision::kind::sign_in:
    case route_decision::kind::callback:
    case route_decision::kind::sign_out:
      return answer_sign_in(sys, *sign_in, std::move(r), std::move(reply));
    default:
      return answer_page(sys, setup, std::move(r), std::move(reply));
  }
}

void answer_page(caf::actor_system& sys, const page_setup& setup,
                 route_decision r, header_reply_fn reply) {
  if (r.what == route_decision::kind::action)
    return act_on(sys, setup, std::move(r), std::move(reply));
  show(sys, setup, std::move(r), std::move(reply));
}

} // namespace heaven
