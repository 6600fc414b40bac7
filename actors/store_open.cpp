#include "actors/store_open.hpp"

#include <fstream>

#include "actors/pg.hpp"
#include "actors/pg_store.hpp"
#include "actors/sqlite_store.hpp"
#include "base/config.hpp"

namespace heaven {

std::unique_ptr<store_backend> open_command_line_store(const settings& cfg) {
  if (cfg.database_url.empty())
    return std::make_unique<sqlite_store>(cfg.data_dir + "/heaven.db",
                                          open_mode::existing, false);
  // Without migrating, the store refuses a database whose schema is not
  // exactly this heaven's (pg_check_schema).
  pg_options opts;
  opts.notices = false;
  opts.migrate = false;
  return std::make_unique<pg_store>(cfg.database_url, std::move(opts));
}

std::string command_line_log_key(const settings& cfg) {
  std::string key;
  if (cfg.database_url.empty()) {
    std::ifstream in{cfg.data_dir + "/log.key"};
    std::getline(in, key);
    return key;
  }
  pg::connection conn{cfg.database_url};
  auto r = conn.query("SELECT value FROM secrets WHERE name = 'log_key'");
  return r.rows() == 0 ? "" : r.text(0, 0);
}

} // namespace heaven
