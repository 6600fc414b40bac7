// Deterministic tests of the receiver and deployment actors on CAF's test
// coordinator: no real time passes, no thread races. The store is the real
// one on a real SQLite file (behind a gate that can refuse writes, as a full
// disk does), the GitHub status outbox and its courier are the real ones;
// providers and the HTTP client are recording fakes.

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sqlite3.h>

#include "actors/deployment.hpp"
#include "actors/ingress_route.hpp"
#include "actors/outbox.hpp"
#include "actors/receiver.hpp"
#include "actors/statuses.hpp"
#include "actors/store.hpp"
#include "actors/workspace.hpp"
#include "base/log_book.hpp"
#include "base/metrics.hpp"
#include "messages/registry.hpp"
#include "tests/support/virtual_world.hpp"

using namespace heaven;
using namespace std::chrono_literals;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

/// What the fakes saw.
struct record {
  std::vector<std::string> removed;
  std::vector<workspace_plan> plans;
  /// When set, checkouts are not answered; the deployments asking are here.
  bool hold_checkouts = false;
  std::vector<checkout_client> waiting;
  /// How often a held checkout was told `cancel` by its deployment.
  int checkout_cancels = 0;
  std::vector<std::string> provider_starts;
  int cancels = 0;
  /// Deployments swept, in order.
  std::vector<int64_t> swept;
  /// Every provider started, in order.
  std::vector<process_provider_actor> providers;
  /// Batches of output (log_atom, lines) the deployment answered.
  int batches_answered = 0;
  // -- what the fake auto_deploy actor heard
  std::vector<commit_status_event> statuses;
};

using record_ptr = std::shared_ptr<record>;

auto_deploy_actor::behavior_type fake_auto_deploy(auto_deploy_actor::pointer,
                                                  record_ptr rec) {
  return {
    [=](status_atom, commit_status_event& ev) { rec->statuses.push_back(ev); },
  };
}

/// A provider that succeeds at once, saying one line.
process_provider_actor::behavior_type
ok_provider(process_provider_actor::pointer self, deployment_actor deployment) {
  caf::anon_send(deployment, log_atom::value,
                 log_line{stream::out, "deployed fine"});
  caf::anon_send(deployment, result_atom::value,
                 provider_outcome{deploy_state::success, "Deployed main"});
  self->quit();
  return {
    [](cancel_atom) {},
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) {},
  };
}

/// A provider that runs until cancelled, then reports.
process_provider_actor::behavior_type
hang_provider(process_provider_actor::pointer self, deployment_actor deployment,
              record_ptr rec) {
  return {
    [=](cancel_atom) {
      ++rec->cancels;
      caf::anon_send(deployment, log_atom::value,
                     log_line{stream::out, "output after the deadline"});
      caf::anon_send(deployment, log_atom::value,
                     log_line{stream::heaven, "killed the process group"});
      caf::anon_send(deployment, result_atom::value,
                     provider_outcome{deploy_state::failure, "cancelled"});
      self->quit();
    },
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    // Finishes when told to (the tests send `kill` as "you are done").
    [=](kill_atom) {
      caf::anon_send(deployment, result_atom::value,
                     provider_outcome{deploy_state::success,
                                      "Deployed at last"});
      self->quit();
    },
  };
}

/// A provider whose output comes in batches, as the process runner sends
/// it: one at the start, one when cancelled (after the deadline); it ends
/// only once the deployment answered that one.
process_provider_actor::behavior_type
batch_provider(process_provider_actor::pointer self,
               deployment_actor deployment, record_ptr rec) {
  self
    ->request(deployment, caf::infinite, log_atom::value,
              std::vector<log_line>{{stream::out, "batch one"},
                                    {stream::err, "batch two"}})
    .then([=] { ++rec->batches_answered; });
  return {
    [=](cancel_atom) {
      self
        ->request(
          deployment, caf::infinite, log_atom::value,
          std::vector<log_line>{{stream::out, "batch after the deadline"}})
        .then([=] {
          ++rec->batches_answered;
          self->send(deployment, result_atom::value,
                     provider_outcome{deploy_state::failure, "cancelled"});
          self->quit();
        });
    },
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) {},
  };
}

/// A checkout being made that never finishes by itself: it counts the
/// cancels its deployment sends (the test sends `prepared` for it).
workspace_actor::behavior_type held_workspace(workspace_actor::pointer self,
                                              record_ptr rec) {
  return {
    [=](cancel_atom) { ++rec->checkout_cancels; },
    [](started_atom, int32_t) {},
    [](prepared_atom, bool, std::string&) {},
  };
}

/// A provider that dies with an error instead of reporting.
process_provider_actor::behavior_type
crash_provider(process_provider_actor::pointer self) {
  self->quit(caf::make_error(caf::sec::runtime_error, "segfault in provider"));
  return {
    [](cancel_atom) {},
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) {},
  };
}

/// A provider whose code throws on the first message it handles.
process_provider_actor::behavior_type
throwing_provider(process_provider_actor::pointer self) {
  self->send(self, kill_atom::value);
  return {
    [](cancel_atom) {},
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) -> void { throw std::runtime_error("bug in the provider"); },
  };
}

struct fixture : test::virtual_world {
  record_ptr rec = std::make_shared<record>();
  std::shared_ptr<deployment_context> ctx
    = std::make_shared<deployment_context>();
  outbox_actor statuses;
  receiver_actor recv;

  fixture() {
    ctx->cfg.data_dir = dir.string();
    ctx->cfg.public_url = "https://heaven.test";
    ctx->cfg.api_endpoint = "https://api.github.test/";
    ctx->cfg.github_token = "ghp_secret_token_123";
    ctx->cfg.deployment_timeout = 300;
    ctx->logs = std::make_shared<log_book>((dir / "logs").string(),
                                           std::vector<std::string>{});
    ctx->log_key = "test-key";
    // GitHub answers every request with 201 {}.
    net->host("https://api.github.test/");
    open_store();
    ctx->store = store;
    ctx->http = http;
    auto r = rec;
    ctx->open_scope = [](int64_t id) {
      process_scope scope;
      scope.id = id;
      scope.cookie = "test:" + std::to_string(id);
      return scope;
    };
    ctx->sweep = [r](caf::actor_system&, process_scope scope, sweep_client to) {
      r->swept.push_back(scope.id);
      caf::anon_send(to, swept_atom::value, int32_t{0});
    };
    auto reg = std::make_shared<provider_registry>();
    reg->add("ok",
             [r](caf::actor_system& sys, provider_job job, deployment_actor d) {
               r->provider_starts.push_back(job.workspace);
               return sys.spawn(ok_provider, d);
             });
    reg->add("hang",
             [r](caf::actor_system& sys, provider_job job, deployment_actor d) {
               r->provider_starts.push_back(job.workspace);
               auto p = sys.spawn(hang_provider, d, r);
               r->providers.push_back(p);
               return p;
             });
    reg->add("batch",
             [r](caf::actor_system& sys, provider_job job, deployment_actor d) {
               r->provider_starts.push_back(job.workspace);
               return sys.spawn(batch_provider, d, r);
             });
    reg->add("crash",
             [r](caf::actor_system& sys, provider_job job, deployment_actor) {
               r->provider_starts.push_back(job.workspace);
               return sys.spawn(crash_provider);
             });
    reg->add("throw",
             [r](caf::actor_system& sys, provider_job job, deployment_actor) {
               r->provider_starts.push_back(job.workspace);
               return sys.spawn(throwing_provider);
             });
    // An API provider (like heroku): no checkout.
    reg->add(
      "api",
      [r](caf::actor_system& sys, provider_job job, deployment_actor d) {
        r->provider_starts.push_back(job.workspace);
        return sys.spawn(ok_provider, d);
      },
      false);
    reg->add(
      "api_hang",
      [r](caf::actor_system& sys, provider_job job, deployment_actor d) {
        r->provider_starts.push_back(job.workspace);
        return sys.spawn(hang_provider, d, r);
      },
      false);
    ctx->providers = reg;
    ctx->cfg.web_endpoint = "https://github.example.com/";
    ctx->make_workspace = [r](caf::actor_system& sys, workspace_plan plan,
                              checkout_client d) {
      r->plans.push_back(plan);
      if (r->hold_checkouts) {
        r->waiting.push_back(d);
        return sys.spawn(held_workspace, r);
      }
      caf::anon_send(d, prepared_atom::value, true,
                     "/ws/" + std::to_string(plan.id));
      return workspace_actor{};
    };
    ctx->remove_workspace = [r](caf::actor_system&, std::string path) {
      r->removed.push_back(path);
    };
  }

  /// Starts the status outbox (as serve() does).
  void start_outbox() {
    auto key = ctx->log_key;
    statuses = sys.spawn(
      outbox, ctx->store, ctx->http,
      status_courier(github_api{ctx->cfg.api_endpoint, ctx->cfg.github_token},
                     [key](int64_t id) {
                       return "https://heaven.test/deployments/"
                              + std::to_string(id)
                              + "/log?token=" + log_token(key, id);
                     }),
      outbox_options{});
    sched.run();
  }

  void start() {
    if (!statuses)
      start_outbox();
    recv = sys.spawn(receiver, context_ptr{ctx});
    sched.run();
  }

  ~fixture() {
    caf::anon_send_exit(recv, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(statuses, caf::exit_reason::user_shutdown);
    run();
  }

  /// Refuses `start` and `finish` from now on, as a store that cannot
  /// write does (or accepts them again).
  void refuse_writes(bool refuse) {
    if (refuse)
      script->refuse = {"start", "finish"};
    else
      script->refuse.clear();
  }

  /// How many writes the store refused.
  int refused() const {
    return script->refused["start"] + script->refused["finish"];
  }

  /// Every request GitHub got, in order.
  std::vector<http_request> requests() const {
    return net->sent();
  }

  static inbound_event event(std::string delivery, std::string provider,
                             std::string app = "app",
                             std::string env = "production") {
    inbound_event ev;
    ev.delivery = std::move(delivery);
    ev.type = event_kind::deployment;
    ev.body = "{}";
    ev.repo = "octo/app";
    auto& d = ev.deployment;
    d.github_id = 42;
    d.repo = "octo/app";
    d.clone_url = "file:///nowhere";
    d.sha = "0123456789abcdef0123456789abcdef01234567";
    d.ref = "main";
    d.environment = std::move(env);
    d.task = "deploy";
    d.actor = "alice";
    d.app = std::move(app);
    d.provider = std::move(provider);
    d.environment_url = "https://app.example.com";
    d.payload_json = "{}";
    return ev;
  }

  /// Sends `ev` as the ingress would and returns the ingress's answer.
  ingress_reply deliver(inbound_event ev) {
    ingress_reply reply;
    auto handle = self->request(recv, caf::infinite, event_atom::value,
                                std::move(ev));
    sched.run();
    handle.receive([&](event_receipt& r) { reply = receipt_answer(r); },
                   [&](caf::error& e) {
                     BOOST_FAIL("receiver failed: " + sys.render(e));
                   });
    return reply;
  }

  /// Asks the receiver to drain; the answer, once it came, is in `drained`.
  void drain(int64_t seconds) {
    auto d = std::make_shared<bool>(false);
    drained = d;
    sys.spawn([this, seconds, d](caf::event_based_actor* s) {
      s->request(recv, caf::infinite, drain_atom::value, seconds)
        .then([d](bool) { *d = true; });
    });
    sched.run();
  }

  std::shared_ptr<bool> drained;

  /// The states GitHub was sent, in order.
  std::vector<std::string> posted_states() const {
    std::vector<std::string> result;
    for (auto& r : requests())
      if (r.method == "POST")
        result.push_back(json::parse(r.body).at("state"));
    return result;
  }

  /// The description of the last status GitHub was sent.
  std::string last_description() const {
    auto all = requests();
    for (auto i = all.rbegin(); i != all.rend(); ++i)
      if (i->method == "POST")
        return json::parse(i->body).at("description");
    return {};
  }

  /// The states the store queued for deployment `id`, in order.
  std::vector<std::string> stored_states(int64_t id) const {
    std::vector<std::string> result;
    for (auto& body : query("SELECT body FROM outbox WHERE stream = 'd"
                            + std::to_string(id) + "' ORDER BY id"))
      result.push_back(json::parse(body).at("state"));
    return result;
  }

  /// The deployment's state in the store.
  std::string state_of(int64_t id) const {
    auto rows = query("SELECT state FROM deployments WHERE id = "
                      + std::to_string(id));
    return rows.empty() ? "" : rows[0];
  }

  std::vector<std::string> unsettled() const {
    return query("SELECT id FROM outbox WHERE settled_at IS NULL");
  }

  std::string log_text(int64_t id) const {
    std::ifstream in{ctx->logs->path(id)};
    return {std::istreambuf_iterator<char>(in), {}};
  }
};

} // namespace

BOOST_FIXTURE_TEST_SUITE(deployment_actor_suite, fixture)

BOOST_AUTO_TEST_CASE(a_good_deployment_posts_queued_in_progress_success) {
  start();
  auto reply = deliver(event("d-1", "ok"));
  BOOST_TEST(reply.status == 201);
  BOOST_TEST(reply.body == "{}");
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  for (auto& r : requests()) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.url
               == "https://api.github.test/repos/octo/app/deployments/42/"
                  "statuses");
    auto body = json::parse(r.body);
    BOOST_TEST(body.at("log_url")
               == "https://heaven.test/deployments/1/log?token="
                    + log_token("test-key", 1));
    BOOST_TEST(body.at("environment_url") == "https://app.example.com");
  }
  auto bodies = std::vector<json>{};
  for (auto& r : requests())
    bodies.push_back(json::parse(r.body));
  BOOST_TEST(bodies[0].at("description")
             == "Queued main (0123456) for production by alice");
  BOOST_TEST(bodies[1].at("description")
             == "Deploying main (0123456) to production with ok");
  BOOST_TEST(bodies[2].at("description") == "Deployed main");
  BOOST_TEST(stored_states(1)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(state_of(1) == "success");
  // Every status was delivered and recorded as such.
  BOOST_TEST(unsettled().empty());
  BOOST_TEST(rec->provider_starts == (std::vector<std::string>{"/ws/1"}));
  BOOST_TEST(rec->removed == (std::vector<std::string>{"/ws/1"}));
  BOOST_TEST(rec->swept == (std::vector<int64_t>{1}));
  // The checkout is asked for the exact sha, with the token for GitHub's
  // host only.
  BOOST_REQUIRE(rec->plans.size() == 1u);
  BOOST_TEST(rec->plans[0].sha == "0123456789abcdef0123456789abcdef01234567");
  BOOST_TEST(rec->plans[0].clone_url == "file:///nowhere");
  BOOST_TEST(rec->plans[0].token == "ghp_secret_token_123");
  BOOST_TEST(rec->plans[0].token_host == "github.example.com");
  // The checkout and the provider run in the deployment's scope.
  BOOST_TEST(rec->plans[0].scope.cookie == "test:1");
  auto log = log_text(1);
  BOOST_TEST(log.find("deployed fine\n") != std::string::npos);
  BOOST_TEST(log.find("heaven: success: Deployed main\n") != std::string::npos);
  BOOST_TEST(!ctx->logs->live(1));
}

BOOST_AUTO_TEST_CASE(an_api_provider_runs_without_a_checkout) {
  start();
  BOOST_TEST(deliver(event("d-1", "api")).status == 201);
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(rec->plans.empty());
  BOOST_TEST(rec->provider_starts == (std::vector<std::string>{""}));
  BOOST_TEST(rec->removed.empty());
}

BOOST_AUTO_TEST_CASE(an_api_provider_is_cancelled_on_timeout) {
  start();
  BOOST_TEST(deliver(event("d-1", "api_hang")).status == 201);
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress"}));
  sched.advance_time(300s);
  sched.run();
  BOOST_TEST(rec->cancels == 1);
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  BOOST_TEST(last_description() == "Deployment timed out after 300 seconds");
  BOOST_TEST(rec->plans.empty());
  BOOST_TEST(rec->removed.empty());
}

BOOST_AUTO_TEST_CASE(a_redelivery_is_acknowledged_and_not_deployed_again) {
  start();
  BOOST_TEST(deliver(event("d-1", "ok")).status == 201);
  sched.run();
  auto again = deliver(event("d-1", "ok"));
  BOOST_TEST(again.status == 200);
  sched.run();
  BOOST_TEST(rec->provider_starts.size() == 1u);
  BOOST_TEST(posted_states().size() == 3u);
}

BOOST_AUTO_TEST_CASE(a_timeout_fails_the_deployment_without_real_time) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress"}));
  // Just before the deadline nothing happens...
  sched.advance_time(299s);
  sched.run();
  BOOST_TEST(rec->cancels == 0);
  // ...at the deadline the provider is cancelled and the deployment fails.
  sched.advance_time(1s);
  sched.run();
  BOOST_TEST(rec->cancels == 1);
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  BOOST_TEST(last_description() == "Deployment timed out after 300 seconds");
  auto log = log_text(1);
  std::string tail = "DEPLOYMENT TIMED OUT AFTER 300 SECONDS\n";
  BOOST_REQUIRE(log.size() > tail.size());
  BOOST_TEST(log.substr(log.size() - tail.size()) == tail);
  // Output after the deadline is not in the log; the provider's account of
  // stopping is, before the timeout line.
  BOOST_TEST(log.find("output after the deadline") == std::string::npos);
  BOOST_TEST(log.find("heaven: killed the process group\nheaven: "
                      "DEPLOYMENT TIMED OUT")
             != std::string::npos);
}

BOOST_AUTO_TEST_CASE(batches_of_output_are_written_and_always_answered) {
  start();
  deliver(event("d-1", "batch"));
  sched.run();
  BOOST_TEST(rec->batches_answered == 1);
  auto log = log_text(1);
  BOOST_TEST(log.find("batch one\n") != std::string::npos);
  BOOST_TEST(log.find("batch two\n") != std::string::npos);
  // After the deadline a batch is dropped but answered all the same: the
  // provider, waiting for the answer, ends.
  sched.advance_time(300s);
  sched.run();
  BOOST_TEST(rec->batches_answered == 2);
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
  log = log_text(1);
  BOOST_TEST(log.find("batch after the deadline") == std::string::npos);
  std::string tail = "DEPLOYMENT TIMED OUT AFTER 300 SECONDS\n";
  BOOST_REQUIRE(log.size() > tail.size());
  BOOST_TEST(log.substr(log.size() - tail.size()) == tail);
}

BOOST_AUTO_TEST_CASE(a_timeout_while_checking_out_fails_and_cleans_up) {
  rec->hold_checkouts = true;
  start();
  deliver(event("d-1", "ok"));
  sched.run();
  BOOST_TEST(posted_states() == (std::vector<std::string>{"queued"}));
  sched.advance_time(300s);
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "failure"}));
  BOOST_TEST(state_of(1) == "failure");
  BOOST_TEST(rec->provider_starts.empty());
  // The deployment told its checkout to stop.
  BOOST_TEST(rec->checkout_cancels == 1);
  // The checkout finishes late: it is removed, not used.
  BOOST_REQUIRE(rec->waiting.size() == 1u);
  caf::anon_send(rec->waiting[0], prepared_atom::value, true,
                 std::string{"/ws/late"});
  sched.run();
  BOOST_TEST(rec->removed == (std::vector<std::string>{"/ws/late"}));
  BOOST_TEST(rec->provider_starts.empty());
  BOOST_TEST(posted_states().size() == 2u);
}

BOOST_AUTO_TEST_CASE(a_failed_checkout_is_an_error) {
  rec->hold_checkouts = true;
  start();
  deliver(event("d-1", "ok"));
  sched.run();
  BOOST_REQUIRE(rec->waiting.size() == 1u);
  caf::anon_send(rec->waiting[0], prepared_atom::value, false,
                 std::string{"commit 0123456 not found"});
  sched.run();
  BOOST_TEST(posted_states() == (std::vector<std::string>{"queued", "error"}));
  BOOST_TEST(last_description()
             == "could not check out 0123456: commit 0123456 not found");
  BOOST_TEST(rec->removed.empty());
  BOOST_TEST(rec->provider_starts.empty());
}

BOOST_AUTO_TEST_CASE(a_crashing_provider_ends_in_error) {
  start();
  deliver(event("d-1", "crash"));
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  BOOST_TEST(last_description().find("provider crash crashed") == 0u);
  BOOST_TEST(state_of(1) == "error");
}

BOOST_AUTO_TEST_CASE(a_provider_that_throws_ends_in_error) {
  start();
  deliver(event("d-1", "throw"));
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  BOOST_TEST(last_description().find("provider throw crashed: ") == 0u,
             last_description());
  BOOST_TEST(state_of(1) == "error");
  BOOST_TEST(rec->swept == (std::vector<int64_t>{1}));
}

BOOST_AUTO_TEST_CASE(one_deployment_at_a_time_per_app_and_environment) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  auto second = event("d-2", "hang");
  second.deployment.github_id = 43;
  deliver(second);
  sched.run();
  // Another environment of the same app, and another app, may run.
  deliver(event("d-3", "hang", "app", "staging"));
  deliver(event("d-4", "hang", "other", "production"));
  sched.run();
  BOOST_TEST(rec->provider_starts.size() == 3u);
  BOOST_TEST(stored_states(2) == (std::vector<std::string>{"error"}));
  BOOST_TEST(state_of(2) == "error");
  bool refused = false;
  for (auto& r : requests()) {
    auto body = json::parse(r.body);
    if (body.at("state") == "error") {
      BOOST_TEST(body.at("description") == "Already deploying.");
      BOOST_TEST(r.url.find("/deployments/43/statuses") != std::string::npos);
      refused = true;
    }
  }
  BOOST_TEST(refused);
  // It never ran: no log file (its log is made from its row when read).
  BOOST_TEST(!fs::exists(ctx->logs->path(2)));
  BOOST_TEST(!fs::exists(ctx->logs->times_path(2)));
  BOOST_TEST(fs::exists(ctx->logs->path(1)));
  // Once the first has ended, the app+environment is free again.
  sched.advance_time(300s);
  sched.run();
  deliver(event("d-5", "ok"));
  sched.run();
  BOOST_TEST(state_of(5) == "success");
}

BOOST_AUTO_TEST_CASE(bad_input_ends_in_error_and_runs_nothing) {
  start();
  std::vector<std::pair<inbound_event, std::string>> cases;
  auto e1 = event("d-1", "");
  cases.emplace_back(e1, "payload.config.provider is missing");
  auto e2 = event("d-2", "teleport");
  cases.emplace_back(e2, "unknown provider 'teleport'");
  auto e3 = event("d-3", "ok");
  e3.deployment.ref = "main..evil";
  cases.emplace_back(e3, "invalid ref 'main..evil'");
  auto e4 = event("d-4", "ok");
  e4.deployment.task = "deploy; rm -rf /";
  cases.emplace_back(e4, "invalid task");
  auto e5 = event("d-5", "ok");
  e5.deployment.sha = "abc";
  cases.emplace_back(e5, "invalid sha");
  auto e6 = event("d-6", "ok");
  e6.deployment.clone_url = "--upload-pack=touch /tmp/pwned";
  cases.emplace_back(e6, "invalid repository.clone_url");
  for (auto& [ev, expected] : cases) {
    net->clear();
    BOOST_TEST(deliver(ev).status == 201);
    sched.run();
    BOOST_REQUIRE(requests().size() == 1u);
    auto body = json::parse(requests()[0].body);
    BOOST_TEST(body.at("state") == "error");
    std::string description = body.at("description");
    BOOST_TEST(description.find(expected) == 0u, description);
  }
  BOOST_TEST(rec->provider_starts.empty());
  BOOST_TEST(rec->plans.empty());
}

BOOST_AUTO_TEST_CASE(
  a_stop_lets_running_deployments_finish_and_keeps_the_rest) {
  start();
  deliver(event("d-1", "hang"));
  // The second one waits for its checkout when heaven stops.
  rec->hold_checkouts = true;
  deliver(event("d-2", "ok", "other"));
  sched.run();
  BOOST_REQUIRE(rec->waiting.size() == 1u);
  drain(30);
  BOOST_TEST(!*drained);
  // The running one goes on; the waiting one gives up its checkout when it
  // arrives and stays queued, with no more status than `queued`.
  caf::anon_send(rec->waiting[0], prepared_atom::value, true,
                 std::string{"/ws/2"});
  sched.run();
  BOOST_TEST(rec->removed == (std::vector<std::string>{"/ws/2"}));
  BOOST_TEST(state_of(2) == "queued");
  BOOST_TEST(stored_states(2) == (std::vector<std::string>{"queued"}));
  // An event arriving meanwhile is recorded, not started.
  deliver(event("d-3", "ok", "third"));
  sched.run();
  BOOST_TEST(state_of(3) == "queued");
  BOOST_TEST(rec->provider_starts.size() == 1u);
  // The running one finishes within the drain: success, and the drain is
  // over at once.
  sched.advance_time(10s);
  sched.run();
  BOOST_TEST(!*drained);
  BOOST_TEST(state_of(1) == "running");
  BOOST_REQUIRE(rec->providers.size() == 1u);
  caf::anon_send(rec->providers[0], kill_atom::value); // "You are done."
  sched.run();
  BOOST_TEST(*drained);
  BOOST_TEST(state_of(1) == "success");
  BOOST_TEST(rec->cancels == 0);
  BOOST_TEST(stored_states(1)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
}

BOOST_AUTO_TEST_CASE(a_stop_ends_what_still_runs_after_the_drain_time) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  drain(30);
  sched.advance_time(29s);
  sched.run();
  BOOST_TEST(!*drained);
  BOOST_TEST(rec->cancels == 0);
  sched.advance_time(1s);
  sched.run();
  BOOST_TEST(rec->cancels == 1);
  BOOST_TEST(*drained);
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  BOOST_TEST(last_description() == "heaven was stopped during the deployment");
}

BOOST_AUTO_TEST_CASE(a_stop_with_nothing_running_is_over_at_once) {
  rec->hold_checkouts = true;
  start();
  deliver(event("d-1", "ok"));
  sched.run();
  drain(30);
  BOOST_TEST(!*drained); // The checkout still comes: it must be removed.
  BOOST_TEST(rec->checkout_cancels == 1);
  caf::anon_send(rec->waiting[0], prepared_atom::value, true,
                 std::string{"/ws/1"});
  sched.run();
  BOOST_TEST(*drained);
  BOOST_TEST(state_of(1) == "queued");
  BOOST_TEST(rec->provider_starts.empty());
}

BOOST_AUTO_TEST_CASE(unfinished_deployments_are_resumed_or_ended_at_start) {
  // An earlier run recorded two deployments; one had started.
  start_outbox();
  {
    auto r = sys.spawn(receiver, context_ptr{ctx});
    sched.run();
    rec->hold_checkouts = true;
    auto first = event("d-1", "ok");
    auto second = event("d-2", "ok", "other");
    caf::anon_send(ctx->store, accept_atom::value, first);
    caf::anon_send(ctx->store, accept_atom::value, second);
    caf::anon_send(ctx->store, start_atom::value, int64_t{2},
                   std::string{"Deploying"});
    sched.run();
    caf::anon_send_exit(r, caf::exit_reason::kill);
    sched.run();
  }
  BOOST_TEST(state_of(1) == "queued");
  BOOST_TEST(state_of(2) == "running");
  rec->hold_checkouts = false;
  rec->plans.clear();
  start();
  sched.run();
  BOOST_TEST(stored_states(1)
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
  BOOST_TEST(stored_states(2)
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  std::string restarted = json::parse(query("SELECT body FROM outbox "
                                            "WHERE stream = 'd2' ORDER "
                                            "BY id DESC LIMIT 1")[0])
                            .at("description");
  BOOST_TEST(restarted
             == "heaven restarted during this deployment; its outcome is "
                "unknown: deploy again");
  // The one that had started never ran again; its processes were swept
  // before its end was recorded.
  BOOST_TEST(rec->plans.size() == 1u);
  BOOST_TEST(rec->swept.size() >= 1u);
  BOOST_TEST(rec->swept[0] == 2);
}

BOOST_AUTO_TEST_CASE(beyond_max_running_deployments_wait_queued_in_order) {
  // One runs; the second waits in memory, the third and fourth as rows.
  ctx->cfg.max_running = 1;
  rec->hold_checkouts = true;
  start();
  for (auto app : {"a", "b", "c", "d"})
    deliver(event(std::string{"d-"} + app, "ok", app));
  sched.run();
  BOOST_REQUIRE(rec->plans.size() == 1u);
  BOOST_TEST(rec->plans[0].id == 1);
  for (int64_t id : {2, 3, 4}) {
    BOOST_TEST(state_of(id) == "queued");
    BOOST_TEST(stored_states(id) == (std::vector<std::string>{"queued"}));
  }
  // The metrics say so too.
  BOOST_TEST(metrics::deployments_running().value() == 1);
  BOOST_TEST(metrics::deployments_waiting().value() == 3);
  // Each starts once the one before it has ended, in the order accepted.
  for (int64_t id = 1; id <= 4; ++id) {
    BOOST_REQUIRE(rec->waiting.size() == static_cast<size_t>(id));
    BOOST_REQUIRE(rec->plans.size() == static_cast<size_t>(id));
    BOOST_TEST(metrics::deployments_waiting().value() == 4 - id);
    BOOST_TEST(rec->plans.back().id == id);
    for (int64_t later = id + 1; later <= 4; ++later)
      BOOST_TEST(state_of(later) == "queued");
    caf::anon_send(rec->waiting.back(), prepared_atom::value, true,
                   "/ws/" + std::to_string(id));
    sched.run();
    BOOST_TEST(state_of(id) == "success");
  }
  BOOST_TEST(rec->plans.size() == 4u);
  BOOST_TEST(rec->provider_starts
             == (std::vector<std::string>{"/ws/1", "/ws/2", "/ws/3", "/ws/4"}));
  BOOST_TEST(metrics::deployments_running().value() == 0);
  BOOST_TEST(metrics::deployments_waiting().value() == 0);
}

BOOST_AUTO_TEST_CASE(waiting_deployments_stay_queued_through_a_stop) {
  ctx->cfg.max_running = 1;
  rec->hold_checkouts = true;
  start();
  for (auto app : {"a", "b", "c"})
    deliver(event(std::string{"d-"} + app, "ok", app));
  sched.run();
  BOOST_REQUIRE(rec->waiting.size() == 1u);
  drain(30);
  caf::anon_send(rec->waiting[0], prepared_atom::value, true,
                 std::string{"/ws/1"});
  sched.run();
  BOOST_TEST(*drained);
  for (int64_t id : {1, 2, 3})
    BOOST_TEST(stored_states(id) == (std::vector<std::string>{"queued"}));
  BOOST_TEST(rec->plans.size() == 1u);
  // The next start runs them through the same bound, in order.
  caf::anon_send_exit(recv, caf::exit_reason::kill);
  sched.run();
  rec->plans.clear();
  rec->waiting.clear();
  start();
  sched.run();
  BOOST_REQUIRE(rec->plans.size() == 1u);
  BOOST_TEST(rec->plans[0].id == 1);
  BOOST_TEST(state_of(2) == "queued");
  // Those an earlier run left queued count as waiting.
  BOOST_TEST(metrics::deployments_running().value() == 1);
  BOOST_TEST(metrics::deployments_waiting().value() == 2);
  for (int64_t id = 1; id <= 3; ++id) {
    BOOST_REQUIRE(rec->waiting.size() == static_cast<size_t>(id));
    BOOST_TEST(metrics::deployments_waiting().value() == 3 - id);
    BOOST_TEST(rec->plans.back().id == id);
    caf::anon_send(rec->waiting.back(), prepared_atom::value, true,
                   "/ws/" + std::to_string(id));
    sched.run();
    BOOST_TEST(
      stored_states(id)
      == (std::vector<std::string>{"queued", "in_progress", "success"}));
  }
  BOOST_TEST(rec->plans.size() == 3u);
}

BOOST_AUTO_TEST_CASE(an_end_the_store_refuses_is_written_when_it_can) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  refuse_writes(true);
  sched.advance_time(300s); // The timeout ends it...
  sched.run();
  // ...but the end cannot be written: nothing is posted, and heaven keeps
  // trying.
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress"}));
  BOOST_TEST(state_of(1) == "running");
  BOOST_TEST(refused() == 1);
  for (int i = 0; i < 5; ++i) {
    sched.advance_time(30s);
    sched.run();
  }
  BOOST_TEST(refused() >= 4);
  BOOST_TEST(posted_states().size() == 2u);
  refuse_writes(false);
  sched.advance_time(30s);
  sched.run();
  BOOST_TEST(state_of(1) == "failure");
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "failure"}));
}

BOOST_AUTO_TEST_CASE(a_start_the_store_refuses_runs_nothing_until_written) {
  refuse_writes(true);
  start();
  deliver(event("d-1", "ok"));
  sched.run();
  // Accepted (accept is not refused here), checked out, but not started.
  BOOST_TEST(posted_states() == (std::vector<std::string>{"queued"}));
  BOOST_TEST(rec->provider_starts.empty());
  BOOST_TEST(state_of(1) == "queued");
  sched.advance_time(1s);
  sched.run();
  BOOST_TEST(rec->provider_starts.empty());
  refuse_writes(false);
  sched.advance_time(2s);
  sched.run();
  BOOST_TEST(rec->provider_starts.size() == 1u);
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "success"}));
}

BOOST_AUTO_TEST_CASE(a_deployment_that_dies_is_ended_by_the_receiver) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  // Find the deployment actor and kill it as a bug would.
  BOOST_REQUIRE(rec->provider_starts.size() == 1u);
  take_over(sys, ctx, 1, "heaven failed during the deployment: boom");
  sched.run();
  BOOST_TEST(state_of(1) == "error");
  BOOST_TEST(last_description() == "heaven failed during the deployment: boom");
  // A second end is never recorded nor posted.
  take_over(sys, ctx, 1, "again");
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
}

BOOST_AUTO_TEST_CASE(a_lock_task_is_carried_out_by_the_store_not_a_provider) {
  start();
  auto ev = event("d-1", "ok");
  ev.deployment.task = "deploy:lock";
  ev.deployment.description = "incident 7";
  BOOST_TEST(deliver(ev).status == 201);
  sched.run();
  BOOST_TEST(posted_states() == (std::vector<std::string>{"success"}));
  BOOST_TEST(last_description() == "octo/app locked on production by alice");
  BOOST_TEST(rec->plans.empty());
  BOOST_TEST(rec->provider_starts.empty());
  BOOST_TEST(state_of(1) == "success");
  BOOST_TEST(query("SELECT actor || '|' || reason FROM locks")
             == std::vector<std::string>{"alice|incident 7"});
}

BOOST_AUTO_TEST_CASE(the_lock_prefix_is_hubot_deploy_prefix) {
  ctx->cfg.deploy_prefix = "ship";
  start();
  auto unlock = event("d-1", "ok");
  unlock.deployment.task = "ship:unlock";
  deliver(unlock);
  sched.run();
  BOOST_TEST(last_description() == "octo/app was not locked on production");
  // With another prefix, deploy:lock is an ordinary (valid) task.
  auto other = event("d-2", "ok", "other");
  other.deployment.task = "deploy:lock";
  deliver(other);
  sched.run();
  BOOST_TEST(rec->provider_starts.size() == 1u);
  BOOST_TEST(query("SELECT count(*) FROM locks")
             == std::vector<std::string>{"0"});
}

BOOST_AUTO_TEST_CASE(a_locked_environment_refuses_naming_the_holder) {
  start();
  auto lock = event("d-1", "ok");
  lock.deployment.task = "deploy:lock";
  lock.deployment.actor = "bob";
  deliver(lock);
  sched.run();
  deliver(event("d-2", "ok"));
  sched.run();
  BOOST_TEST(posted_states() == (std::vector<std::string>{"success", "error"}));
  BOOST_TEST(last_description() == "octo/app is locked on production by bob");
  BOOST_TEST(rec->provider_starts.empty());
  // Someone else's lock is not taken over.
  auto steal = event("d-3", "ok");
  steal.deployment.task = "deploy:lock";
  steal.deployment.actor = "carol";
  deliver(steal);
  sched.run();
  BOOST_TEST(last_description()
             == "octo/app is already locked on production by bob: ask them, "
                "or unlock it first");
}

BOOST_AUTO_TEST_CASE(a_disabled_repository_gets_202_and_nothing_happens) {
  start();
  caf::anon_send(ctx->store, accept_atom::value, event("d-0", "ok"));
  sched.run();
  set_repository_active(db.string(), "octo/app", false);
  net->clear();
  auto reply = deliver(event("d-1", "ok"));
  BOOST_TEST(reply.status == 202);
  BOOST_TEST(reply.body
             == R"({"status":"ignored","reason":"repository disabled"})");
  sched.run();
  BOOST_TEST(requests().empty());
  BOOST_TEST(query("SELECT count(*) FROM deployments")
             == std::vector<std::string>{"1"});
}

BOOST_AUTO_TEST_CASE(status_events_go_to_auto_deploy_and_notices_to_the_store) {
  ctx->auto_deploy = sys.spawn(fake_auto_deploy, rec);
  start();
  inbound_event status;
  status.delivery = "s-1";
  status.type = event_kind::status;
  status.repo = "octo/app";
  status.status.repo = "octo/app";
  status.status.sha = "0123456789abcdef0123456789abcdef01234567";
  status.status.state = "success";
  BOOST_TEST(deliver(status).status == 201);
  inbound_event notice;
  notice.delivery = "s-2";
  notice.type = event_kind::deployment_status;
  notice.repo = "octo/app";
  notice.notice.repo = "octo/app";
  notice.notice.deployment_id = 42;
  notice.notice.state = "success";
  BOOST_TEST(deliver(notice).status == 201);
  // A redelivery goes nowhere.
  BOOST_TEST(deliver(notice).status == 200);
  sched.run();
  BOOST_REQUIRE(rec->statuses.size() == 1u);
  BOOST_TEST(rec->statuses[0].sha == status.status.sha);
  // The notice waits in the store's outbox for the chat services, once.
  BOOST_TEST(query("SELECT stream FROM outbox WHERE kind = 'notice'")
             == std::vector<std::string>{"octo/app#42"});
  BOOST_TEST(requests().empty());
  caf::anon_send_exit(ctx->auto_deploy, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_status_not_yet_delivered_is_delivered_after_a_restart) {
  // A lock task recorded while no outbox ran (heaven died right after the
  // commit): its status waits in the store.
  auto lock = event("d-1", "ok");
  lock.deployment.task = "deploy:lock";
  lock.lock_action = lock_task::lock; // What the receiver would have set.
  caf::anon_send(ctx->store, accept_atom::value, lock);
  sched.run();
  BOOST_TEST(requests().empty());
  BOOST_TEST(unsettled().size() == 1u);
  start();
  sched.run();
  // The outbox asks GitHub first whether it arrived (it might have), then
  // posts it.
  BOOST_REQUIRE(requests().size() == 2u);
  BOOST_TEST(requests()[0].method == "GET");
  BOOST_TEST(requests()[0].url
             == "https://api.github.test/repos/octo/app/deployments/42/"
                "statuses?per_page=100");
  BOOST_TEST(posted_states() == (std::vector<std::string>{"success"}));
  BOOST_TEST(last_description() == "octo/app locked on production by alice");
  BOOST_TEST(unsettled().empty());
}

BOOST_AUTO_TEST_SUITE_END()
