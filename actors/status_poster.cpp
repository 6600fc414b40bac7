#include "actors/status_poster.hpp"

#include <algorithm>

#include <caf/all.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "actors/validate.hpp"

namespace heaven {

namespace {

/// `endpoint` and `path` joined with exactly one slash.
std::string join_url(std::string endpoint, std::string_view path) {
  while (!endpoint.empty() && endpoint.back() == '/')
    endpoint.pop_back();
  while (!path.empty() && path.front() == '/')
    path.remove_prefix(1);
  return endpoint + "/" + std::string{path};
}

/// 5xx, 429 (rate limited) and network failures may go away by themselves.
bool retryable(int status) {
  return status == 0 || status == 429 || status >= 500;
}

std::string describe(const github_status& s) {
  return "status " + s.state + " for " + s.repo + " deployment "
         + std::to_string(s.github_id);
}

} // namespace

std::string status_body(const github_status& s) {
  nlohmann::json body;
  body["state"] = s.state;
  body["description"] = truncate_description(s.description, 140);
  if (!s.log_url.empty()) {
    body["log_url"] = s.log_url;
    // Older GitHub Enterprise knows only target_url.
    body["target_url"] = s.log_url;
  }
  if (!s.environment_url.empty())
    body["environment_url"] = s.environment_url;
  return body.dump();
}

bool terminal_state(const std::string& state) {
  return state == "success" || state == "failure" || state == "error";
}

namespace {

using self_ptr = status_poster_actor::stateful_pointer<status_poster_state>;

void post_head(self_ptr self, const http_client_actor& http,
               const github_api& api);

/// The head of the queue is done (posted, or given up on): go on.
void finish_head(self_ptr self, const http_client_actor& http,
                 const github_api& api) {
  auto& st = self->state;
  if (terminal_state(st.queue.front().state))
    st.terminal_done = true;
  st.queue.pop_front();
  st.attempt = 0;
  st.in_flight = false;
  if (!st.queue.empty())
    post_head(self, http, api);
  else if (st.terminal_done)
    self->quit();
}

void on_answer(self_ptr self, const http_client_actor& http,
               const github_api& api, const http_response& res) {
  auto& st = self->state;
  const auto& s = st.queue.front();
  if (res.status >= 200 && res.status < 300) {
    spdlog::debug("posted {}", describe(s));
    finish_head(self, http, api);
    return;
  }
  auto why = res.status == 0 ? res.error : "HTTP " + std::to_string(res.status);
  if (res.permanent) {
    spdlog::error("could not post {}: {}; not retried, the same request "
                  "would fail again",
                  describe(s), why);
    finish_head(self, http, api);
    return;
  }
  if (retryable(res.status) && st.attempt < api.attempts) {
    auto shift = std::min(st.attempt - 1, 16);
    auto backoff = api.first_backoff * (int64_t{1} << shift);
    spdlog::warn("posting {} failed ({}), attempt {} of {}; retrying in {} ms",
                 describe(s), why, st.attempt, api.attempts, backoff.count());
    self->delayed_send(self, backoff, retry_atom::value);
    return;
  }
  spdlog::error("gave up posting {} after {} attempt(s): {}", describe(s),
                st.attempt, why);
  finish_head(self, http, api);
}

/// Posts the status at the head of the queue (one attempt).
void post_head(self_ptr self, const http_client_actor& http,
               const github_api& api) {
  auto& st = self->state;
  while (!st.queue.empty() && api.token.empty()) {
    spdlog::info("{} not posted: GITHUB_TOKEN is not set",
                 describe(st.queue.front()));
    if (terminal_state(st.queue.front().state))
      st.terminal_done = true;
    st.queue.pop_front();
  }
  if (st.queue.empty()) {
    st.in_flight = false;
    if (st.terminal_done)
      self->quit();
    return;
  }
  const auto& s = st.queue.front();
  st.in_flight = true;
  ++st.attempt;
  http_request req;
  req.method = "POST";
  req.url = join_url(api.endpoint, "repos/" + s.repo + "/deployments/"
                                     + std::to_string(s.github_id)
                                     + "/statuses");
  req.headers = {{"Accept", "application/vnd.github+json"},
                 {"Authorization", "token " + api.token},
                 {"Content-Type", "application/json"},
                 {"User-Agent", "heaven"}};
  req.body = status_body(s);
  req.timeout_ms = 30000;
  self->request(http, caf::infinite, std::move(req))
    .then([=](http_response& res) { on_answer(self, http, api, res); },
          [=](caf::error& err) {
            http_response res;
            res.error = "http client: " + self->system().render(err);
            on_answer(self, http, api, res);
          });
}

} // namespace

status_poster_actor::behavior_type
status_poster(status_poster_actor::stateful_pointer<status_poster_state> self,
              http_client_actor http, github_api api) {
  api.attempts = std::max(api.attempts, 1);
  return {
    [=](status_atom, github_status& s) {
      self->state.queue.push_back(std::move(s));
      if (!self->state.in_flight)
        post_head(self, http, api);
    },
    [=](retry_atom) {
      if (!self->state.queue.empty())
        post_head(self, http, api);
    },
  };
}

} // namespace heaven
