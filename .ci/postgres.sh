#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, from Debian's packages:
#   source .ci/postgres.sh start   # exports TOLLGATE_TEST_POSTGRES_URL
#   .ci/postgres.sh stop           # (in the same shell or a child of it)
# Each start makes its own cluster in a new directory under /var/tmp,
# reachable only through a socket in that directory (no TCP port, so runs on
# one machine cannot meet), trusting local connections; stop deletes it.
# To test against a server of your own instead, set
# TOLLGATE_TEST_POSTGRES_URL=postgres://user:pass@host/db yourself; each
# test creates and drops its own database there.

pg_bin() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [[ -n $bin ]] || { echo "postgres.sh: PostgreSQL is not installed (run .ci/setup.sh)" >&2; return 1; }
  echo "$bin"
}

pg_start() {
  local bin dir
  bin=$(pg_bin) || return 1
  dir=$(mktemp -d /var/tmp/tollgate-postgres.XXXXXX)
  chown postgres:postgres "$dir"
  (cd "$dir" && runuser -u postgres -- "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >/dev/null)
  (cd "$dir" && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses= -k $dir -c fsync=off -c max_connections=200" start >/dev/null)
  export TOLLGATE_TEST_POSTGRES_DIR=$dir
  export TOLLGATE_TEST_POSTGRES_URL="postgres://postgres@localhost/postgres?host=$dir"
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') in $dir"
}

pg_stop() {
  local bin dir=${TOLLGATE_TEST_POSTGRES_DIR:-}
  [[ -n $dir && -d $dir ]] || return 0
  bin=$(pg_bin) || return 0
  if [[ -f $dir/data/postmaster.pid ]]; then
    (cd "$dir" && runuser -u postgres -- "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null) || {
      echo "postgres.sh: the cluster in $dir did not stop; left in place" >&2
      return 1
    }
  fi
  rm -rf "$dir"
}

case "${1:-}" in
  start) pg_start ;;
  stop) pg_stop ;;
  *) echo "usage: source .ci/postgres.sh start | .ci/postgres.sh stop" >&2; return 2 2>/dev/null || exit 2 ;;
esac
