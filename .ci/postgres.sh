#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, from Debian's packages:
#   source .ci/postgres.sh start   # exports TOLLGATE_TEST_POSTGRES_URL
#   .ci/postgres.sh stop
# It listens on 127.0.0.1 and a socket in its own directory only, trusts
# local connections (nothing else can reach it), and is deleted on stop.
# To test against a database of your own instead, set
# TOLLGATE_TEST_POSTGRES_URL=postgres://user:pass@host/db yourself; each
# test creates and drops its own database there.

pg_dir=/var/tmp/tollgate-postgres
pg_port=55432

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $bin ]] || { echo "postgres.sh: PostgreSQL is not installed (run .ci/setup.sh)" >&2; return 1; }
  echo "$bin"
}

pg_start() {
  local bin
  bin=$(pg_bin) || return 1
  pg_stop
  mkdir -p "$pg_dir"
  chown postgres:postgres "$pg_dir"
  runuser -u postgres -- "$bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $pg_port -k $pg_dir -c fsync=off -c max_connections=200" start >/dev/null
  export TOLLGATE_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$pg_port/postgres"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$pg_port"
}

pg_stop() {
  local bin
  bin=$(pg_bin) || return 0
  if [[ -f $pg_dir/data/postmaster.pid ]]; then
    runuser -u postgres -- "$bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null || true
  fi
  rm -rf "$pg_dir"
}

case "${1:-}" in
  start) pg_start ;;
  stop) pg_stop ;;
  *) echo "usage: source .ci/postgres.sh start | .ci/postgres.sh stop" >&2; return 2 2>/dev/null || exit 2 ;;
esac
