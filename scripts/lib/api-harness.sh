# Shared by scripts/clients-test and scripts/fuzz-api (sourced, not run):
# installs the pinned client and fuzzing tools into git-ignored places and
# runs the service on a free loopback port with a temporary embedded store.
#
#   install_python_tools   .venv-tools/ from clients/requirements.txt
#   install_node_tools     clients/typescript/node_modules/ from package-lock.json
#   start_service          builds (or reuses) target/debug/orgsvc, starts it,
#                          waits for /health/ready; sets ORGSVC_URL and WORK
#   stop_service, launch_service
#                          stop it, and start it again on the same store
#   run_orgsvc ARGS        the binary with the service's settings (`keys rotate`)
#
# Every client runs from 127.0.0.1, and the hooks log in for each fuzzed case,
# so the service's per-IP login rate limit is lifted (the API tests cover it).
# Per-email lockout keeps its defaults: the flows and hooks use fresh emails,
# and a fuzzed login that hits a lock gets 429, a documented answer.
#
# The caller must be at the repository root with `set -euo pipefail`.

REPO_ROOT=$(pwd)
TOOLS_VENV="$REPO_ROOT/.venv-tools"
TS_DIR="$REPO_ROOT/clients/typescript"

log() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }

# Reinstalls only when the pinned list changed (its hash is kept in the venv).
install_python_tools() {
  local requirements="$REPO_ROOT/clients/requirements.txt" stamp="$TOOLS_VENV/.requirements.sha256"
  local wanted
  wanted=$(sha256sum "$requirements" | cut -d' ' -f1)
  if [ -x "$TOOLS_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return
  fi
  log "installing Python tools into .venv-tools/"
  rm -rf "$TOOLS_VENV"
  python3 -m venv "$TOOLS_VENV"
  "$TOOLS_VENV/bin/pip" install --quiet --disable-pip-version-check --no-input \
    --require-virtualenv -r "$requirements"
  echo "$wanted" >"$stamp"
}

install_node_tools() {
  local stamp="$TS_DIR/node_modules/.package-lock.sha256" wanted
  wanted=$(sha256sum "$TS_DIR/package-lock.json" | cut -d' ' -f1)
  if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
    return
  fi
  log "installing Node tools into clients/typescript/node_modules/"
  (cd "$TS_DIR" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$wanted" >"$stamp"
}

SERVICE_PID=""

stop_service() {
  if [ -n "$SERVICE_PID" ] && kill -0 "$SERVICE_PID" 2>/dev/null; then
    kill "$SERVICE_PID" 2>/dev/null || true
    wait "$SERVICE_PID" 2>/dev/null || true
  fi
  SERVICE_PID=""
}

# Call from an EXIT trap: stops the service and removes the temporary directory.
cleanup() {
  local status=$?
  stop_service
  stop_mail_sink
  if [ "$status" -ne 0 ] && [ -f "${WORK:-}/server.log" ]; then
    log "the service's last log lines:"
    tail -n 40 "$WORK/server.log" >&2 || true
  fi
  if [ -n "${WORK:-}" ]; then rm -rf "$WORK"; fi
}

start_service() {
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/orgsvc-clients.XXXXXX")
  export WORK
  log "building the orgsvc binary"
  cargo build --quiet --locked -p orgsvc-api --bin orgsvc
  # A copy, so a concurrent build in the same target dir cannot swap it.
  cp "${CARGO_TARGET_DIR:-$REPO_ROOT/target}/debug/orgsvc" "$WORK/orgsvc"

  start_mail_sink
  SERVICE_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ORGSVC_URL="http://127.0.0.1:$SERVICE_PORT"
  export ORGSVC_URL
  set_orgsvc_command
  create_operator_keys
  launch_service
}

# Operator keys for the operator flows (write) and the fuzzer (read), made
# with the command line before the service starts, as the README's operator
# setup does: the embedded store's file is locked while the service runs.
create_operator_keys() {
  run_orgsvc migrate >/dev/null 2>&1
  ORGSVC_TEST_OPERATOR_KEY=$(run_orgsvc operator-keys create --name clients-test --scope write 2>/dev/null)
  ORGSVC_TEST_OPERATOR_READ_KEY=$(run_orgsvc operator-keys create --name fuzzer --scope read 2>/dev/null)
  export ORGSVC_TEST_OPERATOR_KEY ORGSVC_TEST_OPERATOR_READ_KEY
}

# The copied binary with the service's settings: `"${ORGSVC_CMD[@]}" serve`,
# `run_orgsvc keys rotate`. Tokens are signed with the stored key set
# (EdDSA); a new key signs 2 s after it is published, so the resource-server
# check can rotate without waiting a token lifetime.
# A real SMTP server on loopback (scripts/smtp-sink): the service delivers
# its emails there, and the client flows read the links' tokens from
# ORGSVC_TEST_MAILDIR.
start_mail_sink() {
  SMTP_SINK_STATE="$WORK/smtp-sink"
  export SMTP_SINK_STATE
  local started
  started=$("$REPO_ROOT/scripts/smtp-sink" start)
  SMTP_URL=${started%% *}
  ORGSVC_TEST_MAILDIR=${started#* }
  export ORGSVC_TEST_MAILDIR
  log "SMTP sink at $SMTP_URL, delivering into $ORGSVC_TEST_MAILDIR"
}

stop_mail_sink() {
  if [ -n "${SMTP_SINK_STATE:-}" ]; then
    "$REPO_ROOT/scripts/smtp-sink" stop || true
  fi
}

set_orgsvc_command() {
  ORGSVC_CMD=(env -u ORGSVC_CONFIG
    ORGSVC__PROFILE=development
    ORGSVC__SERVER__HOST=127.0.0.1
    ORGSVC__SERVER__PORT="$SERVICE_PORT"
    ORGSVC__SERVER__WORKERS=2
    ORGSVC__STORE__KIND=embedded
    ORGSVC__STORE__PATH="$WORK/orgsvc.db"
    ORGSVC__AUTH__KEY_ENCRYPTION_SECRET="clients-test-key-encryption-secret-0123"
    ORGSVC__AUTH__SIGNING__PUBLISH_AHEAD_SECS=2
    ORGSVC__AUTH__ACCESS_TOKEN_TTL=86400
    ORGSVC__AUTH__ARGON2__MEMORY_KIB=256
    ORGSVC__AUTH__ARGON2__ITERATIONS=1
    ORGSVC__AUTH__ARGON2__PARALLELISM=1
    ORGSVC__SECURITY__LOGIN_RATE_PER_MINUTE=1000000
    ORGSVC__SECURITY__LOGIN_RATE_BURST=1000000
    ORGSVC__EMAIL__TRANSPORT=smtp
    ORGSVC__EMAIL__SMTP_URL="$SMTP_URL"
    ORGSVC__EMAIL__POLL_INTERVAL_SECS=1
    ORGSVC__LOG__LEVEL=warn
    "$WORK/orgsvc")
}

run_orgsvc() {
  "${ORGSVC_CMD[@]}" "$@"
}

# Starts the service (again, after stop_service) on the same store and
# port, and waits for /health/ready.
launch_service() {
  # Not through a function: $! must be the service itself, for stop_service.
  "${ORGSVC_CMD[@]}" serve >>"$WORK/server.log" 2>&1 &
  SERVICE_PID=$!

  local deadline=$((SECONDS + 60))
  until python3 -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' \
    "$ORGSVC_URL/health/ready" 2>/dev/null; do
    if ! kill -0 "$SERVICE_PID" 2>/dev/null; then
      log "the service exited before it was ready"
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      log "the service was not ready after 60 s"
      return 1
    fi
    sleep 0.2
  done
  log "service ready at $ORGSVC_URL"
}

# Runs schemathesis with every check against the running service. Protected
# operations authenticate through clients/fuzz/hooks.py (an organization and
# its admin per test case); clients/fuzz/schemathesis.toml holds the
# per-operation check settings (why each one, in its comments). Extra
# arguments go to `st run`.
run_schemathesis() {
  (
    cd "$WORK" # schemathesis and hypothesis keep their caches in the working directory
    ORGSVC_FUZZ_URL="$ORGSVC_URL" SCHEMATHESIS_HOOKS="$REPO_ROOT/clients/fuzz/hooks.py" \
      "$TOOLS_VENV/bin/st" --config-file "$REPO_ROOT/clients/fuzz/schemathesis.toml" \
      run "$REPO_ROOT/openapi.json" \
      --url "$ORGSVC_URL" \
      --checks all \
      --workers 2 \
      --generation-database none \
      --no-color \
      "$@"
  )
}
