#!/usr/bin/env bash
# The project's test command (called by `make test` and .ci/run).
# 1. makes sure the services the tests talk to are up on loopback (PostgreSQL, Mosquitto), installing and
#    starting them when missing, or says loudly that their tests will be skipped;
# 2. lints (ruff, mypy, import-linter); 3. runs pytest. pytest's exit code 5 (no tests collected) is a failure.
set -uo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export PATH="$PWD/$VENV/bin:$PATH"

log() { printf '\n== %s\n' "$*"; }

pg_up() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

ensure_postgres() {
  if pg_up; then echo "PostgreSQL: up on 127.0.0.1:5432"; return 0; fi
  echo "PostgreSQL: not answering on 127.0.0.1:5432; trying to start it"
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 || true
  fi
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    ver=$(ls /etc/postgresql 2>/dev/null | head -n1)
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    # a fresh Debian cluster uses peer/password auth; the tests connect as postgres over loopback
    # without a password, so allow exactly that (loopback only) before starting it
    if [ -n "$ver" ] && [ -w "$hba" ] && ! grep -Eq '^host +all +all +127\.0\.0\.1/32 +trust' "$hba"; then
      { echo "local all all trust"; echo "host all all 127.0.0.1/32 trust"; echo "host all all ::1/128 trust"; \
        cat "$hba"; } > "$hba.new" && mv "$hba.new" "$hba" && chown postgres: "$hba" 2>/dev/null || true
    fi
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main start >/dev/null 2>&1 || true
    [ -n "$ver" ] && pg_ctlcluster --skip-systemctl-redirect "$ver" main reload >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do pg_up && break; sleep 0.5; done
    if pg_up; then
      psql -h 127.0.0.1 -U postgres -tc "SELECT 1 FROM pg_database WHERE datname='test'" 2>/dev/null | grep -q 1 \
        || psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null 2>&1 || true
      if psql -h 127.0.0.1 -U postgres -d test -tc "SELECT 1" >/dev/null 2>&1; then
        echo "PostgreSQL: started"; return 0
      fi
      echo "!!!!!!!! PostgreSQL started but database 'test' is not reachable as postgres@127.0.0.1 !!!!!!!!"
    fi
  fi
  echo "!!!!!!!! PostgreSQL could not be installed or started: tests marked 'postgres' WILL BE SKIPPED !!!!!!!!"
  export WELDINSPECT_NO_POSTGRES=1
}

mqtt_up() { (exec 3<>/dev/tcp/127.0.0.1/1883) 2>/dev/null; }

ensure_mosquitto() {
  if mqtt_up; then echo "Mosquitto: up on 127.0.0.1:1883"; return 0; fi
  echo "Mosquitto: not answering on 127.0.0.1:1883; trying to start it"
  if ! command -v mosquitto >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients) \
      >/dev/null 2>&1 || true
  fi
  local bin; bin=$(command -v mosquitto || echo /usr/sbin/mosquitto)
  if [ -x "$bin" ]; then
    # loopback only, anonymous (the tests' broker); the machine's own config is left alone
    local conf; conf=$(mktemp /tmp/weldinspect-mosquitto.XXXXXX.conf)
    printf 'listener 1883 127.0.0.1\nallow_anonymous true\npersistence false\n' > "$conf"
    "$bin" -c "$conf" -d >/dev/null 2>&1 || true
    for _ in $(seq 1 20); do mqtt_up && break; sleep 0.5; done
    if mqtt_up; then echo "Mosquitto: started on 127.0.0.1:1883 ($conf)"; return 0; fi
  fi
  echo "!!!!!!!! Mosquitto could not be installed or started: MQTT broker tests WILL BE SKIPPED !!!!!!!!"
  export WELDINSPECT_NO_MQTT=1
}

ensure_chromium() {
  if command -v chromium >/dev/null 2>&1; then echo "Chromium: $(command -v chromium)"; return 0; fi
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "Chromium: installing Debian's chromium for browser tests"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 || true
  fi
  command -v chromium >/dev/null 2>&1 && echo "Chromium: installed" \
    || echo "!!!!!!!! Chromium could not be installed: tests marked 'browser' WILL BE SKIPPED !!!!!!!!"
}

log "services"
ensure_postgres
ensure_mosquitto
ensure_chromium

log "ruff"
ruff check inspection scripts tests || exit 1
log "mypy"
mypy inspection || exit 1
log "import-linter (layers, torch-free paths, no cycles: pyproject.toml [tool.importlinter])"
lint-imports || exit 1

log "pytest"
python -m pytest "$@"
rc=$?
if [ $rc -eq 5 ]; then echo "pytest collected no tests: that is a failure here"; exit 1; fi
exit $rc
