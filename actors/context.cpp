#include "actors/context.hpp"

#include "base/log_book.hpp"

namespace heaven {

std::string log_url(const context& ctx, int64_t id) {
  return ctx.cfg.public_url + "/deployments/" + std::to_string(id)
         + "/log?token=" + log_token(ctx.log_key, id);
}

} // namespace heaven
