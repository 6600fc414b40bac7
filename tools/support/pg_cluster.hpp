/// A throwaway PostgreSQL cluster for tests: Debian's `initdb` in a fresh
/// temporary directory, `postgres` on 127.0.0.1 and a free port, one
/// database, all removed again on destruction.
///
/// initdb and postgres refuse to run as root (the tests and CI run as
/// root): then the cluster belongs to, and runs as, the unprivileged user
/// `nobody` (through runuser). Failures throw std::runtime_error, which
/// fails the running test case; missing PostgreSQL binaries say that
/// setup.sh installs postgresql.
#pragma once

#include <filesystem>
#include <string>

#include <sys/types.h>

namespace heaven::test {

/// The directory of PostgreSQL's server binaries (initdb, pg_ctl, postgres):
/// `pg_config --bindir` when it holds initdb, else the newest
/// /usr/lib/postgresql/<version>/bin. Throws when there is none.
std::filesystem::path pg_bindir();

/// One running PostgreSQL cluster. Starts on construction (waiting until it
/// accepts connections and the database exists); stops (`pg_ctl stop -m
/// immediate`, then reaps the postmaster, which runs as our child) and
/// removes its directory on destruction.
class pg_cluster {
public:
  /// A cluster whose superuser `user()` signs in over TCP with `password()`
  /// (scram-sha-256), holding the empty database `database()`.
  pg_cluster();
  ~pg_cluster();

  pg_cluster(const pg_cluster&) = delete;
  pg_cluster& operator=(const pg_cluster&) = delete;

  /// "127.0.0.1".
  std::string host() const;

  /// The TCP port it listens on.
  int port() const;

  /// The superuser's name.
  std::string user() const;

  /// The superuser's password.
  std::string password() const;

  /// The database made for the test.
  std::string database() const;

  /// "postgresql://user:password@127.0.0.1:PORT/database".
  std::string url() const;

  /// The same URL with another password (to test a refused sign-in).
  std::string url_with_password(const std::string& password) const;

  /// The cluster's temporary directory (data, sockets, log).
  const std::filesystem::path& dir() const;

  /// The whole server log so far.
  std::string log() const;

  /// Stops the server at once (`pg_ctl stop -m immediate`: its clients'
  /// connections break), keeping its data (every commit that was
  /// answered: synchronous_commit is on); a no-op when it is stopped.
  void halt();

  /// Starts the stopped server again on the same port (and data); throws
  /// std::runtime_error when it does not come up.
  void resume();

private:
  /// Starts postgres on `port`: true once it is ready, false when it did
  /// not start (the port was taken meanwhile).
  bool start(int port);

  /// Stops the server at once (no-op when it is not running).
  void stop();

  std::filesystem::path bindir_;
  std::filesystem::path dir_;
  std::string password_;
  int port_ = 0;
  /// The postmaster, our own child (so we reap it).
  pid_t pid_ = -1;
};

} // namespace heaven::test
