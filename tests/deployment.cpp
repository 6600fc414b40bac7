// Deterministic tests of the receiver and deployment actors on CAF's test
// coordinator: no real time passes, no thread races. Providers, the store
// and the HTTP client are replaced by recording fakes; the status poster,
// the timer and the log book are the real ones.

#include <boost/test/unit_test.hpp>

#include <caf/all.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>

#include "actors/deployment.hpp"
#include "actors/log_book.hpp"
#include "actors/receiver.hpp"
#include "actors/workspace.hpp"
#include "providers/registry.hpp"

using namespace heaven;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

/// What the fakes saw.
struct record {
  std::vector<deployment_update> updates;
  std::vector<http_request> requests;
  std::vector<std::string> removed;
  std::vector<workspace_plan> plans;
  /// When set, checkouts are not answered; the deployments asking are here.
  bool hold_checkouts = false;
  std::vector<caf::actor> waiting;
  std::vector<std::string> provider_starts;
  std::vector<unfinished_deployment> pending;
  std::set<std::string> deliveries;
  int64_t next_id = 1;
  int cancels = 0;
  // -- what the fake store says about locks and switches, and what it saw
  /// The lock_state (and holder) every accepted deployment gets.
  std::string lock_state;
  std::string lock_holder;
  /// Every event's repository is disabled.
  bool ignored = false;
  std::vector<std::string> lock_actions;
  // -- what the fake auto_deploy and notify actors heard
  std::vector<commit_status_event> statuses;
  std::vector<deployment_notice> notices;
};

using record_ptr = std::shared_ptr<record>;

store_actor::behavior_type fake_store(store_actor::pointer self,
                                      record_ptr rec) {
  return {
    [=](accept_atom, inbound_event& ev) {
      accept_result res;
      if (!rec->deliveries.insert(ev.delivery).second) {
        res.duplicate = true;
        return res;
      }
      if (rec->ignored) {
        res.ignored = true;
        return res;
      }
      if (ev.type == "deployment") {
        res.deployment_id = rec->next_id++;
        rec->lock_actions.push_back(ev.lock_action);
        res.lock_state = rec->lock_state;
        res.lock.actor = rec->lock_holder;
      }
      return res;
    },
    [=](update_atom, deployment_update& u) { rec->updates.push_back(u); },
    [=](list_atom, int32_t) { return std::string{"[]"}; },
    [=](pending_atom) { return rec->pending; },
    // The chat-ops questions: these tests deploy, they never lock.
    [=](locks_atom) { return std::vector<env_lock>{}; },
    [=](latest_atom, std::string&) {
      return std::vector<deployed_environment>{};
    },
    [=](claim_atom, std::string&, std::string&, std::string&, std::string&) {
      return true;
    },
    [=](revision_atom, std::string&, std::string&) { return std::string{}; },
    [=](revision_atom, std::string&, std::string&, std::string&) {},
  };
}

auto_deploy_actor::behavior_type fake_auto_deploy(auto_deploy_actor::pointer,
                                                  record_ptr rec) {
  return {
    [=](status_atom, commit_status_event& ev) {
      rec->statuses.push_back(ev);
    },
  };
}

notify_actor::behavior_type fake_notify(notify_actor::pointer,
                                        record_ptr rec) {
  return {
    [=](notify_atom, deployment_notice& n) { rec->notices.push_back(n); },
  };
}

http_client_actor::behavior_type fake_http(http_client_actor::pointer self,
                                           record_ptr rec) {
  return {
    [=](http_request& req) {
      rec->requests.push_back(req);
      return http_response{201, {}, "{}", {}};
    },
    [=](stream_atom, http_request& req, caf::actor&) {
      rec->requests.push_back(req);
      return http_response{200, {}, "", {}};
    },
    [=](cancel_atom, caf::actor&) {},
    [=](http_done_atom, uint64_t, http_response&) {},
  };
}

/// A provider that succeeds at once, saying one line.
provider_actor::behavior_type ok_provider(provider_actor::pointer self,
                                          caf::actor deployment) {
  caf::anon_send(deployment, log_atom::value,
             log_line{stream::out, "deployed fine"});
  caf::anon_send(deployment, result_atom::value,
             provider_outcome{"success", "Deployed main"});
  self->quit();
  return {
    [](cancel_atom) {}, [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {}, [](kill_atom) {},
  };
}

/// A provider that runs until cancelled, then reports.
provider_actor::behavior_type hang_provider(provider_actor::pointer self,
                                            caf::actor deployment,
                                            record_ptr rec) {
  return {
    [=](cancel_atom) {
      ++rec->cancels;
      caf::anon_send(deployment, log_atom::value,
                     log_line{stream::out, "output after the deadline"});
      caf::anon_send(deployment, log_atom::value,
                 log_line{stream::heaven, "killed the process group"});
      caf::anon_send(deployment, result_atom::value,
                 provider_outcome{"failure", "cancelled"});
      self->quit();
    },
    [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {},
    [](kill_atom) {},
  };
}

/// A provider that dies with an error instead of reporting.
provider_actor::behavior_type crash_provider(provider_actor::pointer self) {
  self->quit(caf::make_error(caf::sec::runtime_error, "segfault in provider"));
  return {
    [](cancel_atom) {}, [](started_atom, int32_t) {},
    [](exited_atom, exit_info&) {}, [](kill_atom) {},
  };
}

caf::actor_system_config& test_config(caf::actor_system_config& cfg) {
  cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  return cfg;
}

struct fixture {
  caf::actor_system_config cfg;
  caf::actor_system sys{test_config(cfg)};
  caf::scheduler::test_coordinator& sched
    = dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler());
  caf::scoped_actor self{sys, true};
  record_ptr rec = std::make_shared<record>();
  fs::path dir;
  std::shared_ptr<context> ctx = std::make_shared<context>();
  receiver_actor recv;

  fixture() {
    dir = fs::temp_directory_path()
          / ("heaven-core-" + std::to_string(::getpid()) + "-"
             + std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::create_directories(dir);
    ctx->cfg.data_dir = dir.string();
    ctx->cfg.public_url = "https://heaven.test";
    ctx->cfg.api_endpoint = "https://api.github.test/";
    ctx->cfg.github_token = "ghp_secret_token_123";
    ctx->cfg.deployment_timeout = 300;
    ctx->logs = std::make_shared<log_book>((dir / "logs").string(),
                                           std::vector<std::string>{});
    ctx->log_key = "test-key";
    ctx->store = sys.spawn(fake_store, rec);
    ctx->http = sys.spawn(fake_http, rec);
    auto reg = std::make_shared<provider_registry>();
    auto r = rec;
    reg->add("ok", [r](caf::actor_system& sys, provider_job job,
                       caf::actor d) {
      r->provider_starts.push_back(job.workspace);
      return sys.spawn(ok_provider, d);
    });
    reg->add("hang", [r](caf::actor_system& sys, provider_job job,
                         caf::actor d) {
      r->provider_starts.push_back(job.workspace);
      return sys.spawn(hang_provider, d, r);
    });
    reg->add("crash", [r](caf::actor_system& sys, provider_job job,
                          caf::actor d) {
      r->provider_starts.push_back(job.workspace);
      return sys.spawn(crash_provider);
    });
    // An API provider (like heroku): no checkout.
    reg->add(
      "api",
      [r](caf::actor_system& sys, provider_job job, caf::actor d) {
        r->provider_starts.push_back(job.workspace);
        return sys.spawn(ok_provider, d);
      },
      false);
    reg->add(
      "api_hang",
      [r](caf::actor_system& sys, provider_job job, caf::actor d) {
        r->provider_starts.push_back(job.workspace);
        return sys.spawn(hang_provider, d, r);
      },
      false);
    ctx->providers = reg;
    ctx->cfg.web_endpoint = "https://github.example.com/";
    ctx->make_workspace = [r](caf::actor_system&, workspace_plan plan,
                              caf::actor d) {
      r->plans.push_back(plan);
      if (r->hold_checkouts) {
        r->waiting.push_back(d);
        return;
      }
      caf::anon_send(d, prepared_atom::value, true,
                     "/ws/" + std::to_string(plan.id));
    };
    ctx->remove_workspace = [r](caf::actor_system&, std::string path) {
      r->removed.push_back(path);
    };
  }

  void start() {
    recv = sys.spawn(receiver, context_ptr{ctx});
    sched.run();
  }

  ~fixture() {
    caf::anon_send_exit(recv, caf::exit_reason::user_shutdown);
    sched.run();
    // Fire whatever timers remain (pollers' retries, timers) and drain.
    while (sched.trigger_timeouts() > 0)
      sched.run();
    caf::anon_send_exit(ctx->store, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx->http, caf::exit_reason::user_shutdown);
    sched.run();
    fs::remove_all(dir);
  }

  static inbound_event event(std::string delivery, std::string provider,
                             std::string app = "app",
                             std::string env = "production") {
    inbound_event ev;
    ev.delivery = std::move(delivery);
    ev.type = "deployment";
    ev.body = "{}";
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

  /// Sends `ev` as the ingress would and returns the reply.
  ingress_reply deliver(inbound_event ev) {
    ingress_reply reply;
    auto handle = self->request(recv, caf::infinite, event_atom::value,
                                std::move(ev));
    sched.run();
    handle.receive([&](ingress_reply& r) { reply = r; },
                   [&](caf::error& e) {
                     BOOST_FAIL("receiver failed: " + sys.render(e));
                   });
    return reply;
  }

  /// The states GitHub was sent, in order.
  std::vector<std::string> posted_states() const {
    std::vector<std::string> result;
    for (auto& r : rec->requests)
      result.push_back(nlohmann::json::parse(r.body).at("state"));
    return result;
  }

  std::vector<std::string> stored_states(int64_t id) const {
    std::vector<std::string> result;
    for (auto& u : rec->updates)
      if (u.id == id)
        result.push_back(u.state);
    return result;
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
  for (auto& r : rec->requests) {
    BOOST_TEST(r.method == "POST");
    BOOST_TEST(r.url
               == "https://api.github.test/repos/octo/app/deployments/42/"
                  "statuses");
    auto body = nlohmann::json::parse(r.body);
    BOOST_TEST(body.at("log_url")
               == "https://heaven.test/deployments/1/log?token="
                    + log_token("test-key", 1));
    BOOST_TEST(body.at("environment_url") == "https://app.example.com");
  }
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "Deployed main");
  BOOST_TEST(stored_states(1)
             == (std::vector<std::string>{"queued", "running", "success"}));
  BOOST_TEST(rec->provider_starts == (std::vector<std::string>{"/ws/1"}));
  BOOST_TEST(rec->removed == (std::vector<std::string>{"/ws/1"}));
  // The checkout is asked for the exact sha, with the token for GitHub's
  // host only.
  BOOST_REQUIRE(rec->plans.size() == 1u);
  BOOST_TEST(rec->plans[0].sha == "0123456789abcdef0123456789abcdef01234567");
  BOOST_TEST(rec->plans[0].clone_url == "file:///nowhere");
  BOOST_TEST(rec->plans[0].token == "ghp_secret_token_123");
  BOOST_TEST(rec->plans[0].token_host == "github.example.com");
  auto log = log_text(1);
  BOOST_TEST(log.find("deployed fine\n") != std::string::npos);
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
             == (std::vector<std::string>{"queued", "in_progress",
                                          "failure"}));
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "Deployment timed out after 300 seconds");
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
  auto last = nlohmann::json::parse(rec->requests.back().body);
  BOOST_TEST(last.at("description") == "Deployment timed out after 300 seconds");
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
  BOOST_TEST(rec->provider_starts.empty());
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
  std::string description
    = nlohmann::json::parse(rec->requests.back().body).at("description");
  BOOST_TEST(description == "could not check out 0123456: commit 0123456 not "
                            "found");
  BOOST_TEST(rec->removed.empty());
  BOOST_TEST(rec->provider_starts.empty());
}

BOOST_AUTO_TEST_CASE(a_crashing_provider_ends_in_error) {
  start();
  deliver(event("d-1", "crash"));
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  auto last = nlohmann::json::parse(rec->requests.back().body);
  std::string description = last.at("description");
  BOOST_TEST(description.find("provider crash crashed") == 0u);
  BOOST_TEST(stored_states(1).back() == "error");
}

BOOST_AUTO_TEST_CASE(one_deployment_at_a_time_per_app_and_environment) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  deliver(event("d-2", "hang"));
  sched.run();
  // Another environment of the same app, and another app, may run.
  deliver(event("d-3", "hang", "app", "staging"));
  deliver(event("d-4", "hang", "other", "production"));
  sched.run();
  BOOST_TEST(rec->provider_starts.size() == 3u);
  BOOST_TEST(stored_states(2) == (std::vector<std::string>{"error"}));
  bool refused = false;
  for (auto& r : rec->requests) {
    auto body = nlohmann::json::parse(r.body);
    if (body.at("state") == "error") {
      BOOST_TEST(body.at("description") == "Already deploying.");
      refused = true;
    }
  }
  BOOST_TEST(refused);
  // Once the first has ended, the app+environment is free again.
  sched.advance_time(300s);
  sched.run();
  deliver(event("d-5", "ok"));
  sched.run();
  BOOST_TEST(stored_states(5).back() == "success");
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
    rec->requests.clear();
    BOOST_TEST(deliver(ev).status == 201);
    sched.run();
    BOOST_REQUIRE(rec->requests.size() == 1u);
    auto body = nlohmann::json::parse(rec->requests[0].body);
    BOOST_TEST(body.at("state") == "error");
    std::string description = body.at("description");
    BOOST_TEST(description.find(expected) == 0u, description);
  }
  BOOST_TEST(rec->provider_starts.empty());
}

BOOST_AUTO_TEST_CASE(stopping_heaven_ends_running_deployments_with_error) {
  start();
  deliver(event("d-1", "hang"));
  sched.run();
  caf::anon_send_exit(recv, caf::exit_reason::user_shutdown);
  sched.run();
  BOOST_TEST(posted_states()
             == (std::vector<std::string>{"queued", "in_progress", "error"}));
  auto last = nlohmann::json::parse(rec->requests.back().body);
  BOOST_TEST(last.at("description")
             == "heaven was stopped during the deployment");
}

BOOST_AUTO_TEST_CASE(unfinished_deployments_are_resumed_or_ended_at_start) {
  auto never_started = event("d-1", "ok").deployment;
  auto was_running = event("d-2", "ok", "other").deployment;
  rec->pending = {{7, "queued", never_started}, {8, "running", was_running}};
  start();
  sched.run();
  BOOST_TEST(stored_states(7)
             == (std::vector<std::string>{"queued", "running", "success"}));
  BOOST_TEST(stored_states(8) == (std::vector<std::string>{"error"}));
}

BOOST_AUTO_TEST_CASE(a_lock_task_is_carried_out_by_the_store_not_a_provider) {
  start();
  auto ev = event("d-1", "ok");
  ev.deployment.task = "deploy:lock";
  rec->lock_state = "locked";
  rec->lock_holder = "alice";
  BOOST_TEST(deliver(ev).status == 201);
  sched.run();
  BOOST_TEST(rec->lock_actions == (std::vector<std::string>{"lock"}));
  BOOST_TEST(posted_states() == (std::vector<std::string>{"success"}));
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "octo/app locked on production by alice");
  BOOST_TEST(rec->plans.empty());
  BOOST_TEST(rec->provider_starts.empty());
  BOOST_TEST(stored_states(1) == (std::vector<std::string>{"success"}));
}

BOOST_AUTO_TEST_CASE(the_lock_prefix_is_hubot_deploy_prefix) {
  ctx->cfg.deploy_prefix = "ship";
  start();
  auto unlock = event("d-1", "ok");
  unlock.deployment.task = "ship:unlock";
  rec->lock_state = "not_locked";
  deliver(unlock);
  sched.run();
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "octo/app was not locked on production");
  // With another prefix, deploy:lock is an ordinary task.
  auto other = event("d-2", "ok", "other");
  other.deployment.task = "deploy:lock";
  rec->lock_state = "";
  deliver(other);
  sched.run();
  BOOST_TEST(rec->lock_actions == (std::vector<std::string>{"unlock", ""}));
  BOOST_TEST(rec->provider_starts.size() == 1u);
}

BOOST_AUTO_TEST_CASE(a_locked_environment_refuses_naming_the_holder) {
  start();
  rec->lock_state = "locked";
  rec->lock_holder = "bob";
  deliver(event("d-1", "ok"));
  sched.run();
  BOOST_TEST(posted_states() == (std::vector<std::string>{"error"}));
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "octo/app is locked on production by bob");
  BOOST_TEST(rec->provider_starts.empty());
  // Someone else's lock is not taken over.
  auto steal = event("d-2", "ok");
  steal.deployment.task = "deploy:lock";
  steal.deployment.actor = "carol";
  rec->lock_state = "already_locked";
  deliver(steal);
  sched.run();
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "octo/app is already locked on production by bob: ask them, "
                "or unlock it first");
}

BOOST_AUTO_TEST_CASE(a_disabled_repository_gets_202_and_nothing_happens) {
  rec->ignored = true;
  start();
  auto reply = deliver(event("d-1", "ok"));
  BOOST_TEST(reply.status == 202);
  BOOST_TEST(reply.body
             == R"({"status":"ignored","reason":"repository disabled"})");
  sched.run();
  BOOST_TEST(rec->requests.empty());
  BOOST_TEST(rec->updates.empty());
}

BOOST_AUTO_TEST_CASE(status_events_go_to_auto_deploy_and_statuses_to_notify) {
  ctx->auto_deploy = sys.spawn(fake_auto_deploy, rec);
  ctx->notify = sys.spawn(fake_notify, rec);
  start();
  inbound_event status;
  status.delivery = "s-1";
  status.type = "status";
  status.repo = "octo/app";
  status.status.repo = "octo/app";
  status.status.sha = "0123456789abcdef0123456789abcdef01234567";
  status.status.state = "success";
  BOOST_TEST(deliver(status).status == 201);
  inbound_event notice;
  notice.delivery = "s-2";
  notice.type = "deployment_status";
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
  BOOST_REQUIRE(rec->notices.size() == 1u);
  BOOST_TEST(rec->notices[0].deployment_id == 42);
  BOOST_TEST(rec->requests.empty());
  caf::anon_send_exit(ctx->auto_deploy, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(ctx->notify, caf::exit_reason::user_shutdown);
}

BOOST_AUTO_TEST_CASE(a_lock_task_left_by_a_crash_gets_its_status_at_start) {
  auto lock = event("d-1", "ok").deployment;
  lock.task = "deploy:lock";
  rec->pending = {{9, "received", lock}};
  start();
  sched.run();
  BOOST_TEST(posted_states() == (std::vector<std::string>{"success"}));
  BOOST_TEST(nlohmann::json::parse(rec->requests.back().body)
               .at("description")
             == "octo/app locked on production by alice");
  BOOST_TEST(rec->provider_starts.empty());
}

BOOST_AUTO_TEST_SUITE_END()
