#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: one cluster from Debian's
# postgresql package (the newest installed major), bound to 127.0.0.1, trust
# authentication for the superuser "reef". fsync stays on: the tests that claim
# a write is durable must mean it.
#
#   bash .ci/pg.sh start DIR   # install if needed, initdb once, start, wait until ready
#   bash .ci/pg.sh stop DIR    # stop the server of this DIR's cluster, if it runs
#
# DIR (no spaces) holds the cluster (DIR/pg) and the server's log (DIR/pg.log).
# Start is idempotent: if this cluster's server is up on the port it does
# nothing, otherwise it stops that server (if any) and starts it afresh;
# databases are kept.
#
# PostgreSQL refuses to run as root. As root, the server runs as the postgres
# user, which must reach the cluster: under /root/.cache, or in a mktemp -d
# folder (mode 700), it cannot, and loosening root's folders is not an option.
# Such a DIR's cluster then lives in the postgres user's home
# (~postgres/reef-ci/<hash of DIR>, which only postgres can write: no shared
# /tmp name anyone could take first), and DIR/pg is a symbolic link to it;
# `rm -rf` that folder too to discard it. The log stays in DIR either way: root
# opens it, the server only inherits it. Run by any other user, the binaries
# run as that user, and the cluster is DIR/pg.
#
# Client URL: postgres://reef@127.0.0.1:$REEF_PG_PORT/postgres. Port:
# REEF_PG_PORT (default 25432); REEF_PG_START_TIMEOUT (default 60 s) bounds
# each start and stop. TCP only: no Unix socket, so no socket path to share
# with the system's own clusters or to outgrow its length limit.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 && $1 =~ ^(start|stop)$ && $2 != *' '* ]] || usage
ACTION=$1
if [[ $ACTION == start ]]; then mkdir -p "$2"; elif [[ ! -d $2 ]]; then exit 0; fi
DIR=$(cd "$2" && pwd)
PORT=${REEF_PG_PORT:-25432}
TIMEOUT=${REEF_PG_START_TIMEOUT:-60}
LOG=$DIR/pg.log
# Many test servers, each with its own pool, share this one cluster.
SETTINGS="-p $PORT -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=200"

log() { echo "[pg] $*" >&2; }

as_root() { [[ $(id -u) -eq 0 ]]; }

# The server's programs run as the cluster's owner, from a folder it can read.
as_owner() {
  if as_root; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi
}

# The newest installed major's programs (Debian: /usr/lib/postgresql/<major>/bin).
bin_dir() {
  local initdb
  initdb=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)
  [[ -x $initdb ]] && dirname "$initdb"
}

install_packages() {
  bin_dir >/dev/null && return 0
  log "installing PostgreSQL from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  # The package creates and starts its own cluster (port 5432). It may not run
  # beside ours, now or after a reboot.
  if ! systemctl disable --now postgresql >/dev/null 2>&1; then
    # No running systemd (a container): its init script stops only its own clusters.
    if [[ -x /etc/init.d/postgresql ]]; then /etc/init.d/postgresql stop >/dev/null 2>&1 || true; fi
  fi
}

# Where the cluster is: DIR/pg, or, once it has been made a link, the link's
# target. Decided once, when the cluster is created, so a later start never
# looks for it elsewhere.
data_dir() {
  if [[ -L $DIR/pg ]]; then readlink "$DIR/pg"; else echo "$DIR/pg"; fi
}

# Creates the folder the cluster goes in, owned by the user the server runs as.
make_data_dir() {
  [[ -e $DIR/pg || -L $DIR/pg ]] && return 0
  if ! as_root; then mkdir -m 700 "$DIR/pg"; return 0; fi
  getent passwd postgres >/dev/null || { log "no postgres user: install Debian's postgresql package"; exit 1; }
  if runuser -u postgres -- test -x "$DIR"; then
    install -d -o postgres -g postgres -m 700 "$DIR/pg"
    return 0
  fi
  local home key
  home=$(getent passwd postgres | cut -d: -f6)
  if [[ ! -d $home || -L $home || $(stat -c %U "$home") != postgres ]]; then
    log "the postgres user cannot reach $DIR, and its home ($home) is not a folder it owns"
    exit 1
  fi
  key=$(printf '%s' "$DIR" | sha256sum | cut -c1-16)
  runuser -u postgres -- mkdir -p -m 700 "$home/reef-ci"
  runuser -u postgres -- mkdir -m 700 "$home/reef-ci/$key"
  ln -s "$home/reef-ci/$key" "$DIR/pg"
  log "the postgres user cannot reach $DIR: the cluster is in $home/reef-ci/$key (linked as $DIR/pg)"
}

# Is this cluster's server running (its postmaster.pid names a live process)?
running() {
  [[ -d $(data_dir) ]] && as_owner "$BIN/pg_ctl" -D "$(data_dir)" status >/dev/null 2>&1
}

# Running, on our port, and accepting connections? postmaster.pid's 4th line
# is the port the server was started with.
ready() {
  local port
  running || return 1
  port=$(as_owner sed -n 4p "$(data_dir)/postmaster.pid" 2>/dev/null) || return 1
  [[ $port == "$PORT" ]] && "$BIN/pg_isready" -q -h 127.0.0.1 -p "$PORT" -U reef -d postgres -t 2
}

stop_server() {
  if running; then
    # fast: roll back open transactions and disconnect clients instead of waiting for them.
    as_owner "$BIN/pg_ctl" -D "$(data_dir)" -m fast -w -t "$TIMEOUT" stop >>"$LOG" 2>&1
    log "stopped the server of $(data_dir)"
  fi
}

init_cluster() {
  local data version
  make_data_dir
  data=$(data_dir)
  version=$(as_owner cat "$data/PG_VERSION" 2>/dev/null) || version=
  [[ $version == "$(basename "$(dirname "$BIN")")" ]] && return 0
  # A cluster of another major cannot be started by these programs, and one
  # without PG_VERSION is an initdb that did not finish; both hold only test data.
  if [[ -n $(as_owner find "$data" -mindepth 1 -maxdepth 1) ]]; then
    log "discarding the unusable cluster in $data${version:+ (PostgreSQL $version)}"
    as_owner find "$data" -mindepth 1 -delete
  fi
  # UTF-8 whatever the machine's locale (a bare container's is POSIX, which
  # would make the cluster SQL_ASCII); C.UTF-8 ships with glibc.
  as_owner "$BIN/initdb" -D "$data" -A trust -U reef -E UTF8 --locale=C.UTF-8 >>"$LOG" 2>&1 || {
    log "initdb failed; last log lines:"
    tail -n 20 "$LOG" >&2
    exit 1
  }
}

start_server() {
  install_packages
  BIN=$(bin_dir)
  if ready; then log "already running on postgres://reef@127.0.0.1:$PORT/postgres"; return 0; fi
  stop_server
  if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
    log "port $PORT is in use by another process"
    exit 1
  fi
  init_cluster
  # Without -l the server's output goes to pg_ctl's, which is the log file
  # opened here: the postgres user need not be able to open anything in DIR.
  # stdin from /dev/null and stdout to the file: a CI step's pipe is not held open.
  if ! as_owner "$BIN/pg_ctl" -D "$(data_dir)" -w -t "$TIMEOUT" -o "$SETTINGS" start </dev/null >>"$LOG" 2>&1; then
    log "the server did not come up within ${TIMEOUT}s; last log lines:"
    tail -n 20 "$LOG" >&2
    stop_server
    exit 1
  fi
  if ! ready; then
    log "the server started but does not answer on 127.0.0.1:$PORT; last log lines:"
    tail -n 20 "$LOG" >&2
    stop_server
    exit 1
  fi
  log "PostgreSQL up on postgres://reef@127.0.0.1:$PORT/postgres (log in $LOG)"
}

case $ACTION in
  start) start_server ;;
  stop)
    BIN=$(bin_dir) || exit 0
    stop_server
    ;;
  *) usage ;;
esac
