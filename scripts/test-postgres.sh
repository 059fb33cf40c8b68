#!/usr/bin/env bash
# A throwaway PostgreSQL server on 127.0.0.1 for the tests marked `backend` (pytest --backend postgresql).
#   scripts/test-postgres.sh start DIR [PORT]   installs PostgreSQL from Debian's packages if it is missing,
#                                               starts a server with its data in DIR, prints its URL
#   scripts/test-postgres.sh stop DIR           stops it
set -euo pipefail
action=${1:?start or stop}
dir=$(realpath -m "${2:?a folder for the server}")
port=${3:-55432}

server_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_owner() {  # PostgreSQL refuses to run as root: root runs it as the postgres user the package creates
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$action" in
  start)
    if [ -z "$(server_bin)" ]; then
      apt-get update -q >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2
    fi
    bin=$(server_bin)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U seqrec --auth=trust >"$dir/initdb.log"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
      -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off" start >&2
    echo "postgresql+psycopg://seqrec@127.0.0.1:$port/postgres"
    ;;
  stop)
    as_owner "$(server_bin)/pg_ctl" -D "$dir/data" -m fast stop >&2
    ;;
  *)
    echo "usage: $0 start|stop DIR [PORT]" >&2
    exit 2
    ;;
esac
