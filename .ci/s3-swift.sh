#!/usr/bin/env bash
# A throwaway S3 server for the tests: a single-node OpenStack Swift with its
# s3api middleware and tempauth, bound to 127.0.0.1. MinIO is not packaged for
# Debian 12; Swift 2.30 is, and it is a production object store.
#
#   bash .ci/s3-swift.sh start DIR   # install if needed, start, wait until healthy
#   bash .ci/s3-swift.sh stop DIR    # stop only the processes this script started
#
# DIR (no spaces) holds everything: config, rings, data, logs, pid files. Start
# is idempotent: if the processes it started are all healthy it does nothing,
# otherwise it stops what it had started and starts afresh; objects are kept.
#
# Client settings: endpoint http://127.0.0.1:$REEF_S3_PORT, region us-east-1,
# path-style, access key "test:tester" (tempauth wants account:user), secret
# "testing". Ports: REEF_S3_PORT (default 9000) for S3; REEF_S3_SWIFT_PORT
# (default 6200) and the next three for the object, container and account
# servers and memcached.
set -euo pipefail

usage() { echo "usage: $0 start|stop DIR" >&2; exit 2; }
[[ $# -eq 2 && $1 =~ ^(start|stop)$ && $2 != *' '* ]] || usage
ACTION=$1
if [[ $ACTION == start ]]; then mkdir -p "$2"; elif [[ ! -d $2 ]]; then exit 0; fi
DIR=$(cd "$2" && pwd)
S3_PORT=${REEF_S3_PORT:-9000}
BASE=${REEF_S3_SWIFT_PORT:-6200}
TIMEOUT=${REEF_S3_START_TIMEOUT:-60}
ETC=$DIR/etc RUN=$DIR/run LOG=$DIR/log SRV=$DIR/srv
ME=$(id -un)
# Storage and memcached before the proxy; the proxy is stopped first.
PROCS="memcached account container object proxy"

log() { echo "[s3-swift] $*" >&2; }

port_of() {
  case $1 in
    object) echo "$BASE" ;;
    container) echo $((BASE + 1)) ;;
    account) echo $((BASE + 2)) ;;
    memcached) echo $((BASE + 3)) ;;
    proxy) echo "$S3_PORT" ;;
  esac
}

# Each process's command line, also how a pid file's PID is recognised as ours.
cmd_of() {
  if [[ $1 == memcached ]]; then
    echo "memcached -l 127.0.0.1 -p $(port_of memcached) -U 0 -m 16 -u $ME"
  else
    # -v: log to stdout (our log file) too; there is no syslog here.
    echo "swift-$1-server $ETC/$1-server.conf -v"
  fi
}

# Is the recorded PID alive and still running our command (not a recycled PID)?
ours() {
  local pid
  [[ -s $RUN/$1.pid ]] || return 1
  pid=$(<"$RUN/$1.pid")
  [[ -r /proc/$pid/cmdline ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$(cmd_of "$1")"
}

# Does the PID exist and is it not a zombie? (A dying process's cmdline reads
# empty before its sockets are closed, so ours() cannot tell that it is gone.)
running() {
  [[ -r /proc/$1/stat ]] && [[ $(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) != Z ]]
}

# Swift servers answer GET /healthcheck with 200; memcached answers "version".
# Plain bash sockets: CI need not have curl.
healthy() {
  (
    exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$1")"
    if [[ $1 == memcached ]]; then
      printf 'version\r\n' >&3
      read -r -t 2 line <&3 && [[ $line == VERSION* ]]
    else
      printf 'GET /healthcheck HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3
      read -r -t 2 line <&3 && [[ $line == "HTTP/1."?" 200 "* ]]
    fi
  ) 2>/dev/null
}

stop_all() {
  local p pid
  for p in proxy object container account memcached; do
    if ours "$p"; then
      pid=$(<"$RUN/$p.pid")
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do running "$pid" || break; sleep 0.1; done
      if running "$pid"; then
        kill -KILL "$pid" 2>/dev/null || true
        for _ in $(seq 20); do running "$pid" || break; sleep 0.1; done
      fi
      log "stopped $p (pid $pid)"
    fi
    rm -f "$RUN/$p.pid"
  done
}

install_packages() {
  local b missing=0
  for b in memcached swift-ring-builder swift-proxy-server swift-object-server \
    swift-container-server swift-account-server; do
    command -v "$b" >/dev/null || missing=1
  done
  ((missing)) || return 0
  log "installing Swift and memcached from Debian"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    swift swift-proxy swift-object swift-container swift-account python3-swift memcached >/dev/null
  # The packages enable (and, where policy-rc.d allows, start) their own
  # daemons: memcached on 11211, Swift's servers on 6200-6202 and a dozen
  # replicators and auditors. None may run beside ours, now or after a reboot.
  local units
  units=$(systemctl list-unit-files --no-legend 'swift*' memcached.service 2>/dev/null |
    awk '$1 !~ /@/ { print $1 }') || true
  # shellcheck disable=SC2086 # one unit per word
  if ! systemctl disable --now $units >/dev/null 2>&1; then
    # No running systemd (a container): stop what the init scripts may have
    # started; they stop by their own pid files, never ours.
    for b in /etc/init.d/memcached /etc/init.d/swift-*; do
      if [[ -x $b ]]; then "$b" stop >/dev/null 2>&1 || true; fi
    done
  fi
}

write_config() {
  mkdir -p "$ETC" "$RUN" "$LOG" "$SRV/d1" "$DIR/cache"
  # Swift always reads /etc/swift/swift.conf (swift_dir moves only the rings).
  # Debian's swift package ships one; never overwrite it: another hash prefix
  # would orphan the objects already stored.
  if [[ ! -f /etc/swift/swift.conf ]]; then
    mkdir -p /etc/swift
    printf '%s\n' '[swift-hash]' 'swift_hash_path_suffix = reef-ci' 'swift_hash_path_prefix = reef-ci' \
      '[storage-policy:0]' 'name = Policy-0' 'default = yes' >/etc/swift/swift.conf
  fi

  # workers = 0: one process per server, so the recorded PID is the whole
  # server; mount_check = false: the "device" is a plain folder.
  local s
  common() {
    printf '%s\n' '[DEFAULT]' 'bind_ip = 127.0.0.1' "bind_port = $1" 'workers = 0' \
      "user = $ME" "swift_dir = $ETC" "devices = $SRV" 'mount_check = false' \
      'disable_fallocate = true' "recon_cache_path = $DIR/cache" 'log_level = INFO'
  }
  for s in account container object; do
    { common "$(port_of $s)"
      printf '%s\n' '[pipeline:main]' "pipeline = healthcheck $s-server" \
        "[app:$s-server]" "use = egg:swift#$s" '[filter:healthcheck]' 'use = egg:swift#healthcheck'
    } >"$ETC/$s-server.conf"
  done

  # Swift's reference pipeline, trimmed: cache (memcached) before s3api, s3api
  # before tempauth; tempauth answers 500 to everything without memcached. slo
  # carries multipart uploads, copy CopyObject. The S3 user's Swift account is
  # created on first use; s3api's region is the SigV4 scope; path-style only.
  { common "$S3_PORT"
    cat <<EOF
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo versioned_writes proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$(port_of memcached)
EOF
    for s in catch_errors gatekeeper healthcheck proxy_logging listing_formats copy slo dlo versioned_writes; do
      printf '[filter:%s]\nuse = egg:swift#%s\n' "${s/_logging/-logging}" "$s"
    done
  } >"$ETC/proxy-server.conf"

  # Rings: one replica on one device, so every partition lives there. Rebuilt
  # only when the ports change (saves ~5 s per start).
  local stamp="$BASE"
  if [[ ! -f $ETC/rings.stamp || $(<"$ETC/rings.stamp") != "$stamp" ]]; then
    for s in object container account; do
      rm -f "$ETC/$s.builder" "$ETC/$s.ring.gz"
      swift-ring-builder "$ETC/$s.builder" create 8 1 1 >/dev/null
      swift-ring-builder "$ETC/$s.builder" add "r1z1-127.0.0.1:$(port_of $s)/d1" 1 >/dev/null
      swift-ring-builder "$ETC/$s.builder" rebalance >/dev/null
    done
    rm -rf "$ETC/backups"
    echo "$stamp" >"$ETC/rings.stamp"
  fi
}

start_all() {
  local p pid all_up=1
  install_packages
  for p in $PROCS; do
    if ! { ours "$p" && healthy "$p"; }; then all_up=0; break; fi
  done
  if ((all_up)); then log "already running on http://127.0.0.1:$S3_PORT"; return 0; fi
  stop_all
  # Swift retries a taken port for 30 s before dying: fail fast instead.
  for p in $PROCS; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$p")") 2>/dev/null; then
      log "port $(port_of "$p") (for $p) is in use by another process"; exit 1
    fi
  done
  write_config
  # stdio to log files, so a CI step's output pipe is not held open; nohup
  # execs the program, so $! is the server's own PID.
  for p in $PROCS; do
    # shellcheck disable=SC2046 # the command line is split on purpose
    nohup $(cmd_of "$p") </dev/null >>"$LOG/$p.log" 2>&1 &
    echo $! >"$RUN/$p.pid"
  done
  local deadline=$((SECONDS + TIMEOUT))
  for p in $PROCS; do
    until healthy "$p"; do
      pid=$(<"$RUN/$p.pid")
      if ! running "$pid" || ((SECONDS > deadline)); then
        log "$p did not come up within ${TIMEOUT}s; last log lines:"
        for q in $PROCS; do echo "== $LOG/$q.log" >&2; tail -n 20 "$LOG/$q.log" >&2 || true; done
        stop_all
        exit 1
      fi
      sleep 0.2
    done
  done
  log "S3 endpoint up on http://127.0.0.1:$S3_PORT (logs in $LOG)"
}

case $ACTION in
  start) start_all ;;
  stop) stop_all ;;
  *) usage ;;
esac
