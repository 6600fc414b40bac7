// heaven's entry point: reads the settings, wires the actors, registers the
// providers, serves until SIGINT/SIGTERM.

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <optional>
#include <random>
#include <thread>

#include <caf/all.hpp>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "actors/auto_deploy.hpp"
#include "actors/auto_deployments.hpp"
#include "actors/children.hpp"
#include "actors/deployment_context.hpp"
#include "actors/http_client.hpp"
#include "actors/http_ingress.hpp"
#include "actors/ingress_answers.hpp"
#include "actors/lease.hpp"
#include "actors/log_shipper.hpp"
#include "actors/notify.hpp"
#include "actors/outbox.hpp"
#include "actors/pg_listener.hpp"
#include "actors/pg_store.hpp"
#include "actors/process.hpp"
#include "actors/receiver.hpp"
#include "actors/scope.hpp"
#include "actors/sqlite_store.hpp"
#include "actors/statuses.hpp"
#include "actors/store.hpp"
#include "actors/store_open.hpp"
#include "actors/workspace.hpp"
#include "base/config.hpp"
#include "base/github_app.hpp"
#include "base/health.hpp"
#include "base/log_book.hpp"
#include "base/log_sink.hpp"
#include "messages/errors.hpp"
#include "messages/registry.hpp"
#include "providers/ansible.hpp"
#include "providers/bundler_capistrano.hpp"
#include "providers/capistrano.hpp"
#include "providers/elastic_beanstalk.hpp"
#include "providers/fabric.hpp"
#include "providers/heroku.hpp"
#include "providers/shell.hpp"
#include "tools/db_commands.hpp"
#include "tools/demo.hpp"
#include "tools/loadtest.hpp"
#include "tools/service.hpp"

using namespace heaven;

namespace {

/// Every provider heaven knows. A new provider is one registration here.
std::shared_ptr<provider_registry>
make_providers(const settings& cfg, http_client_actor http,
               std::shared_ptr<github_app> app) {
  auto reg = std::make_shared<provider_registry>();
  reg->add("shell", shell_provider());
  remote_config native;
  native.known_hosts = cfg.known_hosts;
  native.connect_timeout_ms = cfg.ssh_connect_timeout_ms;
  reg->add("capistrano", capistrano_provider(native));
  reg->add("fabric", fabric_provider(native));
  reg->add("ansible", ansible_provider());
  api_config api;
  api.http = http;
  api.github_api = cfg.api_endpoint;
  api.github_token = cfg.github_token;
  api.github_app = std::move(app);
  api.poll_interval_ms = cfg.poll_interval_ms;
  api.attempts = static_cast<int>(cfg.status_retries);
  heroku_config heroku;
  static_cast<api_config&>(heroku) = api;
  heroku.endpoint = cfg.heroku_endpoint;
  heroku.api_key = cfg.heroku_api_key;
  reg->add("heroku", heroku_provider(std::move(heroku)), false);
  beanstalk_config eb;
  static_cast<api_config&>(eb) = api;
  eb.s3_endpoint = cfg.s3_endpoint;
  eb.beanstalk_endpoint = cfg.beanstalk_endpoint;
  eb.bucket = cfg.beanstalk_bucket;
  eb.access_key_id = cfg.beanstalk_access_key_id;
  eb.secret_access_key = cfg.beanstalk_secret_access_key;
  reg->add("elastic_beanstalk", elastic_beanstalk_provider(std::move(eb)),
           false);
  // GitHub's tarball replaces the checkout, as in the Rails Heaven.
  bundler_config bundler;
  bundler.api = api;
  bundler.data_dir = cfg.data_dir;
  reg->add("bundler_capistrano", bundler_capistrano_provider(bundler), false);
  return reg;
}

std::string random_hex(size_t bytes) {
  std::random_device rd;
  std::string out;
  static constexpr char hex[] = "0123456789abcdef";
  for (size_t i = 0; i < bytes; ++i) {
    auto b = rd() & 0xFF;
    out += hex[b >> 4];
    out += hex[b & 0xF];
  }
  return out;
}

/// Reads the file at `path`, or creates it (mode 0600) with a fresh random
/// value: keys that must survive restarts but never leave the data dir.
std::string read_or_make_secret(const std::string& path) {
  std::ifstream in{path};
  std::string value;
  if (in && std::getline(in, value) && !value.empty())
    return value;
  value = random_hex(32);
  auto old = umask(077);
  std::ofstream out{path, std::ios::trunc};
  out << value << "\n";
  umask(old);
  return value;
}

/// Deployments in flight each hold a few descriptors (pipes, locks, logs):
/// use all the process may have, not the usual soft limit of 1024.
void raise_fd_limit() {
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    setrlimit(RLIMIT_NOFILE, &lim);
  }
}

/// SIGTERM/SIGINT: heaven starts no more deployments (events are still
/// recorded: what has not started runs after the next start), lets the
/// running ones finish for up to HEAVEN_DRAIN_SECONDS, then stops them, and
/// returns as soon as none runs. A second signal stops them at once.
void drain(caf::actor_system& sys, receiver_actor recv, const settings& cfg,
           const sigset_t& stop_signals, int sig) {
  spdlog::info("heaven got signal {} and stops: it starts no more "
               "deployments; running ones may finish within {} s "
               "(HEAVEN_DRAIN_SECONDS); a second signal stops them now",
               sig, cfg.drain_seconds);
  using clock = std::chrono::steady_clock;
  // Past this, heaven exits whatever still waits (a full disk that keeps a
  // deployment from recording its end): a restart ends it with `error`.
  auto ceiling = clock::now() + std::chrono::seconds(cfg.drain_seconds)
                 + std::chrono::seconds(cfg.kill_grace)
                 + std::chrono::seconds(30);
  auto answered = std::make_shared<std::promise<void>>();
  auto done = answered->get_future();
  sys.spawn([recv, answered, seconds = cfg.drain_seconds,
             &sys](caf::event_based_actor* self) {
    self->request(recv, caf::infinite, drain_atom::value, seconds)
      .then([=](bool) { answered->set_value(); },
            [=, &sys](caf::error& err) {
              spdlog::error("heaven could not drain: {}", sys.render(err));
              answered->set_value();
            });
  });
  bool drained = false;
  bool hurried = false;
  while (!drained && clock::now() < ceiling) {
    drained = done.wait_for(std::chrono::milliseconds(100))
              == std::future_status::ready;
    timespec zero{0, 0};
    if (!drained && !hurried
        && sigtimedwait(&stop_signals, nullptr, &zero) > 0) {
      hurried = true;
      spdlog::warn("heaven got a second signal: it stops the running "
                   "deployments now");
      caf::anon_send(recv, cancel_atom::value);
    }
  }
  if (!drained)
    spdlog::error("heaven exits with deployments that could not record their "
                  "end: the next start ends them with error");
}

/// Lets the outboxes deliver what a stop recorded last (the terminal
/// statuses of the deployments it ended, their chat notices) for up to
/// `limit`; what GitHub or a chat service does not take by then stays in
/// the store and is sent at the next start.
void deliver_last_words(caf::actor_system& sys, const store_actor& store,
                        const std::vector<outbox_actor>& boxes,
                        std::chrono::seconds limit) {
  using clock = std::chrono::steady_clock;
  auto deadline = clock::now() + limit;
  caf::scoped_actor self{sys};
  // Once the store answers, it has handed every row it committed to the
  // outboxes (it hands them on in the step that commits them).
  self->request(store, limit, locks_atom::value)
    .receive([](std::vector<env_lock>&) {}, [](caf::error&) {});
  bool delivered = true;
  for (auto& box : boxes) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - clock::now());
    if (left.count() <= 0) {
      delivered = false;
      break;
    }
    self->request(box, left, drain_atom::value)
      .receive([](bool) {}, [&](caf::error&) { delivered = false; });
  }
  if (!delivered)
    spdlog::warn("heaven exits with messages GitHub or a chat service did "
                 "not take within {} s: they are sent at the next start",
                 limit.count());
}

/// This machine's name (instances are named after it).
std::string host_name() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0 || buf[0] == '\0')
    return "heaven";
  return buf;
}

/// This instance lost its lease (several instances): another one ends or
/// runs what it ran, so it must post nothing more. Its deployments'
/// processes are killed at once and heaven exits with status 75
/// (EX_TEMPFAIL); systemd's Restart= brings it back as a new instance.
void fence(std::shared_ptr<process_scopes> scopes, const std::string& why) {
  std::thread{[scopes, why] {
    spdlog::critical("heaven exits with status 75: {}", why);
    scopes->end_all(std::chrono::milliseconds(0));
    spdlog::default_logger()->flush();
    std::_Exit(75);
  }}.detach();
}

/// Why heaven cannot serve, on stderr: "heaven: <text>" as always in
/// text; in JSON one line of level critical like every other line.
void say_fatal(const settings& cfg, const std::string& text) {
  if (cfg.log_format == "json")
    spdlog::critical("{}", text);
  else
    std::cerr << "heaven: " << text << "\n";
}

int serve(settings cfg, bool demo) {
  raise_fd_limit();
  notify_service("STATUS=heaven is starting, data in " + cfg.data_dir);
  std::filesystem::create_directories(cfg.data_dir);
  if (cfg.webhook_secret.empty() && demo) {
    auto path = cfg.data_dir + "/webhook-secret";
    cfg.webhook_secret = read_or_make_secret(path);
    std::cout << "No GITHUB_WEBHOOK_SECRET was set: the demo made one in "
              << path << " (use it as your GitHub webhook's secret).\n";
  }
  // The demo reads GET /deployments, which wants the API token.
  if (cfg.api_token.empty() && demo)
    cfg.api_token = read_or_make_secret(cfg.data_dir + "/api-token");
  // heaven's own log goes to stderr, as a service's should; stdout carries
  // only what a person running it is told. Secrets are redacted from it as
  // from the deployments' logs, in text and in JSON alike.
  use_stderr_log(cfg.log_format, secret_values(cfg, current_environment()));
  spdlog::set_level(spdlog::level::from_str(cfg.log_level));
  if (!cfg.github_client_id.empty() && cfg.github_team_id.empty()
      && cfg.github_org.empty()) {
    say_fatal(cfg, "GITHUB_CLIENT_ID is set, but neither GITHUB_TEAM_ID nor "
                   "HEAVEN_GITHUB_ORG: sign-in with GitHub would let in anyone "
                   "with a GitHub account.\nSet GITHUB_TEAM_ID (that team's "
                   "members) or HEAVEN_GITHUB_ORG (that organisation's "
                   "members), or unset GITHUB_CLIENT_ID.");
    return 2;
  }
  if (!cfg.github_client_id.empty() && cfg.github_client_secret.empty()) {
    say_fatal(cfg, "GITHUB_CLIENT_ID is set, but GITHUB_CLIENT_SECRET is not "
                   "(or pass --github-client-secret-file <file>).");
    return 2;
  }
  if (cfg.webhook_secret.empty()) {
    if (!cfg.insecure) {
      say_fatal(cfg, "GITHUB_WEBHOOK_SECRET is not set, so heaven could not "
                     "tell GitHub's webhooks from anyone else's.\n"
                     "Set it to the secret of your repository's webhook (or "
                     "pass --webhook-secret-file <file>), or pass --insecure "
                     "to accept unsigned events on a private test machine.");
      return 2;
    } else {
      spdlog::warn(
        "**********************************************************");
      spdlog::warn(
        "INSECURE: no webhook secret; heaven accepts UNSIGNED events");
      spdlog::warn("from anyone who can reach {}. Never run it like this in",
                   cfg.listen);
      spdlog::warn("production: set GITHUB_WEBHOOK_SECRET.");
      spdlog::warn(
        "**********************************************************");
    }
  }
  // heaven as a GitHub App: the key is checked now (a bad one stops heaven
  // with the setting's name, never the key).
  std::shared_ptr<github_app> app;
  if (!cfg.github_app_id.empty()) {
    github_app_options o;
    o.app_id = cfg.github_app_id;
    o.private_key = cfg.github_app_private_key;
    o.api_endpoint = cfg.api_endpoint;
    o.fallback_token = cfg.github_token;
    o.ca_file = cfg.ca_file;
    std::string why;
    app = github_app::make(std::move(o), why);
    if (!app) {
      say_fatal(cfg, why);
      return 1;
    }
    spdlog::info("heaven authenticates as GitHub App {}: each repository's "
                 "GitHub calls use its installation's token{}",
                 cfg.github_app_id,
                 cfg.github_token.empty()
                   ? std::string{}
                   : " (GITHUB_TOKEN where the app is not installed)");
  } else if (cfg.github_token.empty()) {
    spdlog::warn("GITHUB_TOKEN is not set: deployment statuses are logged here "
                 "but not posted to GitHub");
  }
  // heaven reaps what its deployments leave behind (it is their child
  // subreaper), and ends what a killed heaven left running before it
  // reports those deployments as ended.
  start_reaper();
  auto scopes = std::make_shared<process_scopes>(cfg.data_dir,
                                                 cfg.cgroups != "off");
  if (scopes->uses_cgroups())
    spdlog::info("heaven runs each deployment's processes in a cgroup of its "
                 "own under {}",
                 scopes->cgroup_root());
  else
    spdlog::info("heaven tracks each deployment's processes without "
                 "cgroups: {}",
                 scopes->without_cgroups());
  auto grace = std::chrono::milliseconds(cfg.kill_grace * 1000);
  for (auto& [id, ending] : scopes->end_leftovers(grace))
    if (ending.ended > 0)
      spdlog::warn("heaven ended {} process(es) that deployment {} left "
                   "running when heaven was stopped or killed ({} needed "
                   "SIGKILL)",
                   ending.ended, id, ending.killed);
  auto env = current_environment();
  drop_service_variables(env);
  auto health = std::make_shared<health_board>();
  auto ctx = std::make_shared<deployment_context>();
  ctx->cfg = cfg;
  ctx->health = health;
  ctx->logs = std::make_shared<log_book>(cfg.data_dir + "/logs",
                                         secret_values(cfg, env));
  ctx->child_env = child_environment(cfg, env);
  ctx->github_app = app;
  if (cfg.database_url.empty())
    ctx->log_key = read_or_make_secret(cfg.data_dir + "/log.key");
  ctx->status_attempts = static_cast<int>(cfg.status_retries);
  ctx->make_workspace = [](caf::actor_system& sys, workspace_plan plan,
                           checkout_client d) {
    return spawn_workspace(sys, std::move(plan), std::move(d));
  };
  ctx->remove_workspace = [](caf::actor_system& sys, std::string path) {
    spawn_cleanup(sys, std::move(path));
  };
  ctx->open_scope = [scopes](int64_t id) { return scopes->open(id); };
  ctx->sweep = [grace](caf::actor_system& sys, process_scope scope,
                       sweep_client reply_to) {
    end_scope_async(sys, std::move(scope), grace,
                    [reply_to](scope_ending ending) {
                      caf::anon_send(reply_to, swept_atom::value,
                                     static_cast<int32_t>(ending.ended));
                    });
  };
  // Handle SIGINT/SIGTERM on this thread only; every other thread (CAF's,
  // Asio's, curl's) inherits the blocked mask.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  caf::actor_system_config sys_cfg;
  // One shared job queue whose idle workers sleep on a condition variable:
  // CAF's default (work stealing) has idle workers poll every 50 us, which
  // on a small machine took a quarter of the CPU away from the webhooks
  // under load (perf; tools/README.md).
  sys_cfg.set("scheduler.policy", caf::atom("sharing"));
  sys_cfg.set("scheduler.max-threads",
              std::max(2u, std::thread::hardware_concurrency()));
  // heaven's own error codes read as their words in logs.
  sys_cfg.add_error_category(ec_category, render_ec);
  caf::actor_system sys{sys_cfg};
  // The app's thread calls back into actors: it ends before their system
  // does, on every way out of here (this is destroyed before `sys`).
  struct stop_app {
    std::shared_ptr<github_app> app;
    ~stop_app() {
      if (app)
        app->stop();
    }
  } stop_app_first{app};
  // Chat notices are queued only for chat services to read.
  bool notices = !chat_services(cfg).empty();
  // Several instances share a PostgreSQL database; one has SQLite.
  ctx->shared = !cfg.database_url.empty();
  std::string instance;
  if (ctx->shared) {
    pg_options o;
    o.notices = notices;
    o.lease_seconds = cfg.lease_seconds;
    o.host = host_name();
    o.listen = cfg.listen;
    o.instance = instance = new_instance_id(o.host);
    ctx->store = sys.spawn<caf::detached>(
      open_store,
      [url = cfg.database_url, o,
       queue = cfg.queue_deployments]() -> std::unique_ptr<store_backend> {
        auto db = std::make_unique<pg_store>(url, o);
        db->set_queue_all(queue);
        spdlog::info("store uses PostgreSQL (HEAVEN_DATABASE_URL) as "
                     "instance {}",
                     o.instance);
        return db;
      },
      health);
  } else {
    ctx->store = sys.spawn<caf::detached>(
      open_store,
      [path = cfg.data_dir + "/heaven.db", notices,
       queue = cfg.queue_deployments]() -> std::unique_ptr<store_backend> {
        auto db = std::make_unique<sqlite_store>(path, open_mode::create,
                                                 notices);
        db->set_queue_all(queue);
        spdlog::info("store opened {}", path);
        return db;
      },
      health);
  }
  // Without its database heaven could accept nothing durably: stop here.
  std::string store_error;
  caf::scoped_actor {
    sys
    } -> request(ctx->store, std::chrono::seconds(30), list_atom::value,
                 int32_t{1})
      .receive([](std::vector<deployment_row>&) {},
               [&](caf::error& err) {
                 // The store's own words ("store: <why>"), else CAF's.
                 auto& ctx = err.context();
                 store_error = ctx.match_elements<std::string>()
                                 ? ctx.get_as<std::string>(0)
                                 : sys.render(err);
                 if (store_error.rfind("store: ", 0) == 0)
                   store_error.erase(0, 7);
               });
  if (!store_error.empty()) {
    say_fatal(cfg, (ctx->shared
                      ? std::string{"cannot use the database of "
                                    "HEAVEN_DATABASE_URL: "}
                      : "cannot use the database in " + cfg.data_dir + ": ")
                     + store_error);
    caf::anon_send_exit(ctx->store, caf::exit_reason::user_shutdown);
    ctx.reset();
    return 1;
  }
  // Several instances: the logs and the key of their links are shared
  // through the database.
  if (!cfg.database_url.empty()) {
    try {
      ctx->log_key = shared_log_key(sys, ctx->store, random_hex(32));
    } catch (const std::exception& e) {
      say_fatal(cfg, e.what());
      caf::anon_send_exit(ctx->store, caf::exit_reason::user_shutdown);
      ctx.reset();
      return 1;
    }
    ship_logs(sys, ctx->logs, ctx->store);
  }
  // systemd's watchdog (WatchdogSec=) is fed only while the store answers.
  caf::actor watchdog;
  if (auto timeout = watchdog_timeout(); timeout.count() > 0)
    watchdog = start_watchdog(sys, ctx->store, timeout);
  ctx->http = sys.spawn(bounded_http_client,
                        http_limits{cfg.http_max_host_connections,
                                    cfg.http_max_connections,
                                    cfg.http_max_streams, cfg.ca_file});
  // GitHub statuses leave through the store's outbox: in order per
  // deployment, retried across restarts until delivered.
  outbox_options outbox_opts;
  outbox_opts.first_backoff = std::chrono::milliseconds(cfg.retry_backoff_ms);
  outbox_opts.max_backoff = std::chrono::milliseconds(cfg.retry_max_backoff_ms);
  outbox_opts.max_age = std::chrono::seconds(cfg.outbox_max_age);
  auto log_key = ctx->log_key;
  auto public_url = cfg.public_url;
  auto statuses = sys.spawn(outbox, ctx->store, ctx->http,
                            status_courier(
                              github_api{cfg.api_endpoint, cfg.github_token},
                              [public_url, log_key](int64_t id) {
                                return public_url + "/deployments/"
                                       + std::to_string(id)
                                       + "/log?token=" + log_token(log_key, id);
                              },
                              app),
                            outbox_opts);
  // Chat notices leave through the outbox too: the store queues one for
  // every deployment_status event it accepts; the notice outbox turns it
  // into one message per chat service, and each chat service has an outbox
  // of its own, so one that is down delays nothing else.
  auto chats = spawn_chat_outboxes(sys, ctx->store, ctx->http, cfg, outbox_opts,
                                   app);
  // Auto-deployments: the store queues the creation with the claim.
  auto deploy_opts = outbox_opts;
  deploy_opts.max_attempts = ctx->status_attempts;
  auto creations = sys.spawn(
    outbox, ctx->store, ctx->http,
    deployment_courier(github_api{cfg.api_endpoint, cfg.github_token}, app),
    deploy_opts);
  ctx->providers = make_providers(cfg, ctx->http, app);
  std::vector<outbox_actor> outboxes{statuses, creations};
  outboxes.insert(outboxes.end(), chats.begin(), chats.end());
  auto_deploy_config auto_cfg;
  auto_cfg.http = ctx->http;
  auto_cfg.store = ctx->store;
  auto_cfg.api_endpoint = cfg.api_endpoint;
  auto_cfg.token = cfg.github_token;
  auto_cfg.app = app;
  auto_cfg.attempts = ctx->status_attempts;
  auto_cfg.first_backoff_ms = ctx->status_backoff_ms;
  ctx->auto_deploy = sys.spawn(auto_deploy, auto_cfg);
  auto recv = sys.spawn(receiver, context_ptr{ctx});
  // Several instances: renew this one's lease (taking over lost ones) and
  // hear when there is work to claim.
  caf::actor lease;
  std::unique_ptr<pg_listener> listener;
  if (ctx->shared) {
    lease = spawn_lease(
      sys,
      lease_setup{ctx->store, recv, std::chrono::seconds(cfg.lease_seconds),
                  [scopes](const std::string& why) { fence(scopes, why); }});
    listener = std::make_unique<pg_listener>(cfg.database_url, [recv] {
      caf::anon_send(recv, wake_atom::value);
    });
    spdlog::info("heaven is instance {} of those sharing the database; its "
                 "lease is {} s",
                 instance, cfg.lease_seconds);
  }
  // Ends the long-lived actors, so that the system's destructor (which
  // waits for all of them) returns.
  auto stop_actors = [&] {
    listener.reset();
    if (lease)
      caf::anon_send_exit(lease, caf::exit_reason::user_shutdown);
    lease = nullptr;
    if (watchdog)
      caf::anon_send_exit(watchdog, caf::exit_reason::user_shutdown);
    watchdog = nullptr;
    caf::anon_send_exit(recv, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx->auto_deploy, caf::exit_reason::user_shutdown);
    for (auto& c : chats)
      caf::anon_send_exit(c, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(creations, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(statuses, caf::exit_reason::user_shutdown);
    if (ctx->shared) {
      // Once nothing delivers here any more: give back what waits and end
      // the lease, so other instances need not wait for it to lapse.
      caf::scoped_actor {
        sys
        } -> request(ctx->store, std::chrono::seconds(30), leave_atom::value)
          .receive([](bool) { spdlog::info("heaven left the instances"); },
                   [&](caf::error& err) {
                     spdlog::error("heaven could not give up its lease ({}); "
                                   "another instance takes over once it "
                                   "lapses",
                                   sys.render(err));
                   });
    }
    caf::anon_send_exit(ctx->http, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(ctx->store, caf::exit_reason::user_shutdown);
    recv = nullptr;
    outboxes.clear();
    statuses = nullptr;
    creations = nullptr;
    chats.clear();
    ctx.reset();
  };
  ingress_options opts;
  opts.listen = cfg.listen;
  opts.secret = cfg.webhook_secret;
  opts.insecure = cfg.insecure;
  opts.max_body = static_cast<std::size_t>(cfg.max_body);
  opts.max_pending_events = static_cast<std::size_t>(cfg.max_pending_events);
  opts.logs = ctx->logs;
  opts.log_key = ctx->log_key;
  opts.health = health;
  opts.api_token = cfg.api_token;
  opts.github_web = cfg.web_endpoint;
  if (app)
    opts.installation_seen = [app](const std::string& repo, int64_t id) {
      app->installation_seen(repo, id);
    };
  if (!cfg.github_client_id.empty()) {
    auto s = std::make_shared<sign_in_setup>();
    s->options = {cfg.github_client_id, cfg.github_client_secret,
                  cfg.github_team_id,   cfg.github_org,
                  cfg.web_endpoint,     cfg.api_endpoint,
                  cfg.public_url};
    // Sessions live 12 hours, in memory (a restart signs everyone out).
    s->sessions = std::make_shared<session_table>(std::chrono::hours(12));
    s->http = ctx->http;
    opts.sign_in = std::move(s);
  }
  std::unique_ptr<ingress_server> server;
  // HEAVEN_METRICS_LISTEN: /metrics without a token, for a private network.
  std::unique_ptr<ingress_server> metrics_server;
  try {
    server = start_ingress(sys, opts, recv, ctx->store);
    if (!cfg.metrics_listen.empty()) {
      auto mopts = opts;
      mopts.listen = cfg.metrics_listen;
      mopts.metrics_only = true;
      mopts.sign_in = nullptr;
      metrics_server = start_ingress(sys, mopts, recv, ctx->store);
      spdlog::info("heaven serves /metrics without a token on {}",
                   cfg.metrics_listen);
    }
  } catch (std::exception& e) {
    say_fatal(cfg, e.what());
    server.reset();
    stop_actors();
    return 1;
  }
  if (cfg.api_token.empty() && cfg.github_client_id.empty())
    spdlog::warn("neither HEAVEN_API_TOKEN nor GITHUB_CLIENT_ID is set: "
                 "GET /deployments, GET /locks and GET /metrics are not "
                 "served on {} (only the log and locks links with their "
                 "token are); set HEAVEN_API_TOKEN to read them with "
                 "'Authorization: Bearer <token>', or GITHUB_CLIENT_ID, "
                 "GITHUB_CLIENT_SECRET and GITHUB_TEAM_ID or "
                 "HEAVEN_GITHUB_ORG to read /deployments and /locks signed "
                 "in with GitHub",
                 cfg.listen);
  else if (cfg.api_token.empty())
    spdlog::info("no HEAVEN_API_TOKEN: GET /metrics is not served on {}",
                 cfg.listen);
  if (!cfg.github_client_id.empty())
    spdlog::info("sign-in with GitHub lets in the members of {} {}",
                 cfg.github_team_id.empty() ? "organisation" : "team",
                 cfg.github_team_id.empty() ? cfg.github_org
                                            : cfg.github_team_id);
  spdlog::info("heaven listens on port {} (POST /events); data in {}",
               server->port(), cfg.data_dir);
  std::cout << "heaven is ready on port " << server->port() << std::endl;
  // Ready for systemd (Type=notify) only now: the database answered and
  // the port listens.
  notify_service("READY=1\nSTATUS=heaven listens on port "
                 + std::to_string(server->port()) + " (POST /events), data in "
                 + cfg.data_dir);
  if (demo) {
    std::thread tour{[cfg, port = server->port()] {
      if (run_demo(cfg, port))
        std::cout << "\nheaven keeps running for your own events: point a "
                     "GitHub webhook (deployment events) at "
                  << cfg.public_url << "/events. Ctrl-C stops it.\n"
                  << std::flush;
    }};
    tour.detach();
  }
  int sig = 0;
  sigwait(&stop_signals, &sig);
  notify_service("STOPPING=1\nSTATUS=heaven stops: running deployments may "
                 "finish within "
                 + std::to_string(cfg.drain_seconds) + " s");
  drain(sys, recv, cfg, stop_signals, sig);
  server->stop();
  if (metrics_server)
    metrics_server->stop();
  // Whatever heaven started and still runs (processes a timeout spared)
  // must not outlive it.
  if (auto ending = scopes->end_all(grace); ending.ended > 0)
    spdlog::warn("heaven ended the {} process(es) still running ({} needed "
                 "SIGKILL)",
                 ending.ended, ending.killed);
  deliver_last_words(sys, ctx->store, outboxes, std::chrono::seconds(5));
  stop_actors();
  server.reset();
  metrics_server.reset();
  return 0;
}

// -- the command line's chat-ops tools ----------------------------------------

/// "owner/name": one slash, neither side empty, GitHub's name characters.
bool valid_repo_name(const std::string& repo) {
  auto slash = repo.find('/');
  if (slash == std::string::npos || slash == 0 || slash + 1 == repo.size()
      || repo.find('/', slash + 1) != std::string::npos)
    return false;
  for (char c : repo)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_'
          || c == '.' || c == '/'))
      return false;
  return true;
}

/// `heaven locks`: every lock, and the link that serves them over HTTP.
int locks_command(const settings& cfg) {
  auto locks = open_command_line_store(cfg)->locks();
  if (locks.empty())
    std::cout << "No environment is locked.\n";
  for (auto& l : locks) {
    std::cout << l.repo << " is locked on " << l.environment << " by "
              << (l.actor.empty() ? "someone" : l.actor) << " since "
              << l.locked_at;
    if (l.deployment_id > 0)
      std::cout << " (deployment " << l.deployment_id << ")";
    if (!l.reason.empty())
      std::cout << ": " << l.reason;
    std::cout << "\n";
  }
  if (auto key = command_line_log_key(cfg); !key.empty())
    std::cout << "Served as JSON at " << cfg.public_url
              << "/locks?token=" << locks_token(key) << "\n";
  return 0;
}

/// `heaven unlock <owner/name> <environment>`: breaks a stuck lock.
int unlock_command(const settings& cfg, const std::vector<std::string>& words) {
  if (words.size() != 2 || !valid_repo_name(words[0]) || words[1].empty()) {
    std::cerr << "usage: heaven unlock <owner/name> <environment> [flags]\n";
    return 2;
  }
  auto db = open_command_line_store(cfg);
  std::optional<env_lock> held;
  for (auto& l : db->locks())
    if (l.repo == words[0] && l.environment == words[1])
      held = l;
  if (!db->remove_lock(words[0], words[1])) {
    std::cout << words[0] << " is not locked on " << words[1] << ".\n";
    return 1;
  }
  std::cout << "Unlocked " << words[0] << " on " << words[1];
  if (held)
    std::cout << " (locked by " << held->actor << " since " << held->locked_at
              << ")";
  std::cout << ".\n";
  return 0;
}

/// `heaven repos [enable|disable <owner/name>]`.
int repos_command(const settings& cfg, const std::vector<std::string>& words) {
  auto db = open_command_line_store(cfg);
  if (words.empty()) {
    auto repos = db->repositories();
    if (repos.empty())
      std::cout << "heaven has not heard from any repository yet.\n";
    for (auto& r : repos)
      std::cout << r.repo << "\t" << (r.active ? "active" : "disabled")
                << "\tfirst seen " << r.first_seen << "\n";
    return 0;
  }
  if (words.size() != 2 || (words[0] != "enable" && words[0] != "disable")
      || !valid_repo_name(words[1])) {
    std::cerr << "usage: heaven repos [enable|disable <owner/name>] "
                 "[flags]\n";
    return 2;
  }
  bool active = words[0] == "enable";
  db->set_repository_active(words[1], active);
  std::cout << words[1]
            << (active ? " is enabled: heaven acts on its events.\n"
                       : " is disabled: heaven ignores its events until "
                         "`heaven repos enable "
                           + words[1] + "`.\n");
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h"
      || args[0] == "help") {
    std::cout << help_text();
    return args.empty() ? 2 : 0;
  }
  auto command = args[0];
  args.erase(args.begin());
  // The load test has flags of its own and needs no server settings.
  if (command == "loadtest") {
    std::error_code ec;
    auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
    return loadtest::loadtest_command(args, ec ? argv[0] : self.string());
  }
  for (auto& a : args)
    if (a == "--help" || a == "-h") {
      std::cout << help_text();
      return 0;
    }
  static const std::vector<std::string> commands = {
    "serve", "demo", "locks", "unlock", "repos", "migrate", "db"};
  if (std::find(commands.begin(), commands.end(), command) == commands.end()) {
    std::cerr << "heaven: unknown command '" << command
              << "' (try heaven --help)\n";
    return 2;
  }
  // Words before the first flag are the command's own (`unlock o/r env`).
  std::vector<std::string> words;
  while (!args.empty() && args.front().rfind("--", 0) != 0) {
    words.push_back(args.front());
    args.erase(args.begin());
  }
  // `db copy --from <dir>` is the command's flag, not a setting.
  std::string copy_from;
  if (command == "db")
    for (size_t i = 0; i < args.size(); ++i)
      if (args[i] == "--from" && i + 1 < args.size()) {
        copy_from = args[i + 1];
        args.erase(args.begin() + static_cast<long>(i),
                   args.begin() + static_cast<long>(i) + 2);
        break;
      }
  auto loaded = load_settings(args, current_environment());
  if (auto err = std::get_if<std::string>(&loaded)) {
    std::cerr << "heaven: " << *err << "\n";
    return 2;
  }
  auto& cfg = std::get<settings>(loaded);
  if (command == "serve" || command == "demo") {
    if (!words.empty()) {
      std::cerr << "heaven: unexpected argument '" << words.front()
                << "' (try heaven --help)\n";
      return 2;
    }
    // The demo shows one heaven on its own data directory.
    if (command == "demo" && !cfg.database_url.empty()) {
      std::cerr << "heaven: heaven demo runs on SQLite in its data "
                   "directory: unset HEAVEN_DATABASE_URL\n";
      return 2;
    }
    return serve(cfg, command == "demo");
  }
  try {
    if (command == "locks" && words.empty())
      return locks_command(cfg);
    if (command == "unlock")
      return unlock_command(cfg, words);
    if (command == "repos")
      return repos_command(cfg, words);
    if (command == "migrate" && words.empty())
      return migrate_command(cfg);
    if (command == "db" && words.size() == 1 && words[0] == "copy")
      return db_copy_command(cfg, copy_from);
    if (command == "migrate")
      std::cerr << "usage: heaven migrate [flags]\n";
    else if (command == "db")
      std::cerr << "usage: heaven db copy [--from <data dir>] [flags]\n";
    else
      std::cerr << "usage: heaven locks [flags]\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "heaven: " << e.what() << "\n";
    return 1;
  }
}
