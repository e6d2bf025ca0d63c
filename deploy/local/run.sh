#!/usr/bin/env bash
# What `make run` runs after the build: the private PostgreSQL and Redis, local secrets, migrations,
# then `parley serve` on 127.0.0.1:$PARLEY_HTTP_PORT (default 8080). On the first run it creates a
# demo tenant, API key and WhatsApp channel through the admin API (kept in var/demo.json); every run
# prints them with copy-paste curl commands. Ctrl-C or SIGTERM: Parley drains, then Redis and
# PostgreSQL stop; the data stays in var/.
set -euo pipefail

LOG_TAG=run
# shellcheck source=deploy/local/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

PARLEY="$PARLEY_ROOT/build/parley"
HTTP_PORT="${PARLEY_HTTP_PORT:-8080}"
HTTP_ADDRESS="${PARLEY_HTTP_ADDRESS:-127.0.0.1}"
PARLEY_LOG="$LOG_DIR/parley.log"
PARLEY_PID_FILE="$RUN_DIR/parley.pid"
SECRETS="$VAR_DIR/secrets.env"
DEMO="$VAR_DIR/demo.json"
SAMPLE="$VAR_DIR/sample-webhook.json"
READY_TIMEOUT=30
DEMO_PHONE_NUMBER_ID=100000000000001
DEMO_WABA_ID=200000000000001
DEMO_DISPLAY_PHONE=+15550000001
FAKE_GRAPH_LOG="$LOG_DIR/fake-graph.log"
FAKE_GRAPH_OUT="$RUN_DIR/fake-graph.json"

check_port_number PARLEY_HTTP_PORT "$HTTP_PORT"
case "$HTTP_ADDRESS" in
0.0.0.0 | '') HTTP_HOST=127.0.0.1 ;;
:: | '[::]') HTTP_HOST='[::1]' ;;
*:*) HTTP_HOST="[$HTTP_ADDRESS]" ;;
*) HTTP_HOST="$HTTP_ADDRESS" ;;
esac
BASE="http://$HTTP_HOST:$HTTP_PORT"

# ---------------------------------------------------------------------------------------------
# Preflight: fail before starting anything.

[ -x "$PARLEY" ] || die "build/parley not found: run make run (or make build) from the repository root"
for tool in curl python3 openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (run: make deps)"
done

old_pid=$(cat "$PARLEY_PID_FILE" 2>/dev/null || true)
case "$old_pid" in
'' | *[!0-9]*) old_pid="" ;;
esac
if [ -n "$old_pid" ] && alive "$old_pid" &&
  [ "$(cat "/proc/$old_pid/comm" 2>/dev/null || true)" = parley ]; then
  die "Parley is already running (pid $old_pid, log var/log/parley.log); stop it with make stop"
fi
if port_in_use "$HTTP_PORT"; then
  die "port $HTTP_PORT is in use by another process; set PARLEY_HTTP_PORT to a free port \
(e.g. PARLEY_HTTP_PORT=$((HTTP_PORT + 1)) make run)"
fi

# ---------------------------------------------------------------------------------------------
# Shutdown: one path for Ctrl-C, SIGTERM, errors and Parley exiting by itself.

parley_pid=""
tail_pid=""
fake_pid=""
shut_down=0

stop_parley() {
  [ -n "$parley_pid" ] || return 0
  if alive "$parley_pid"; then
    stop_parley_pid "$parley_pid"
  fi
  wait "$parley_pid" 2>/dev/null || true
  parley_pid=""
  rm -f "$PARLEY_PID_FILE"
}

shut_down_all() {
  [ "$shut_down" = 0 ] || return 0
  shut_down=1
  stop_parley
  for pid in "$tail_pid" "$fake_pid"; do
    if [ -n "$pid" ]; then
      kill "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  bash "$DEPLOY_DIR/redis.sh" stop || true
  bash "$DEPLOY_DIR/pg.sh" stop || true
}

on_signal() {
  printf '\n'
  say "shutting down"
  shut_down_all
  exit 0
}

trap shut_down_all EXIT
trap on_signal INT TERM

# ---------------------------------------------------------------------------------------------
# Services, secrets, migrations, server.

bash "$DEPLOY_DIR/pg.sh" start
bash "$DEPLOY_DIR/redis.sh" start
bash "$DEPLOY_DIR/secrets.sh"

set -a
# shellcheck source=/dev/null
. "$SECRETS"
set +a
# Parley serves as the application role, which Row Level Security binds; migrations run as the
# tables' owner.
PARLEY_DB_URL=$(bash "$DEPLOY_DIR/pg.sh" app-url parley)
PARLEY_DB_MIGRATE_URL=$(bash "$DEPLOY_DIR/pg.sh" url parley)
PARLEY_REDIS_URL=$(bash "$DEPLOY_DIR/redis.sh" url)
PARLEY_HTTP_PORT="$HTTP_PORT"
PARLEY_HTTP_ADDRESS="$HTTP_ADDRESS"
export PARLEY_DB_URL PARLEY_DB_MIGRATE_URL PARLEY_REDIS_URL PARLEY_HTTP_PORT PARLEY_HTTP_ADDRESS

printf '\n=== %s parley migrate ===\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$PARLEY_LOG"
say "parley migrate ($PARLEY_DB_MIGRATE_URL)"
if ! "$PARLEY" migrate >>"$PARLEY_LOG" 2>&1 </dev/null; then
  log_tail "$PARLEY_LOG"
  die "parley migrate failed (log: var/log/parley.log)"
fi

printf '\n=== %s parley serve ===\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$PARLEY_LOG"
say "parley serve on $BASE (log: var/log/parley.log)"
# A session of its own: Ctrl-C reaches this script only, which then stops Parley with SIGTERM
# (the signal it drains on) before stopping the databases under it.
setsid "$PARLEY" serve >>"$PARLEY_LOG" 2>&1 </dev/null &
parley_pid=$!
printf '%s\n' "$parley_pid" >"$PARLEY_PID_FILE"

deadline=$((SECONDS + READY_TIMEOUT))
while :; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/health/ready" 2>/dev/null || true)
  [ "$code" = 200 ] && break
  if ! alive "$parley_pid"; then
    rc=0
    wait "$parley_pid" || rc=$?
    parley_pid=""
    log_tail "$PARLEY_LOG" 30
    die "parley exited during start-up (exit code $rc; log: var/log/parley.log)"
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log_tail "$PARLEY_LOG" 30
    die "Parley did not answer 200 on $BASE/health/ready within ${READY_TIMEOUT} s \
(last answer: ${code:-none}; log: var/log/parley.log)"
  fi
  sleep 0.2
done
say "ready"

# ---------------------------------------------------------------------------------------------
# Demo tenant (first run only), through the public admin API like any operator would.

# api METHOD PATH [BODY] [TOKEN]: sets API_STATUS (000 when unreachable) and API_BODY.
api() {
  local method=$1 path=$2 body=${3:-} token=${4:-$PARLEY_ADMIN_TOKEN} out
  local args=(-sS -X "$method" --max-time 10 -H "Authorization: Bearer $token" -w '\n%{http_code}')
  if [ -n "$body" ]; then
    args+=(-H 'Content-Type: application/json' --data-binary "$body")
  fi
  if ! out=$(curl "${args[@]}" "$BASE$path" 2>&1); then
    API_STATUS=000
    API_BODY=$out
    return 0
  fi
  API_STATUS=${out##*$'\n'}
  API_BODY=${out%$'\n'*}
}

demo_fail() { # what
  log_tail "$PARLEY_LOG"
  die "demo set-up: $1 answered HTTP $API_STATUS: $API_BODY"
}

# json_get JSON KEY: a top-level field ("" if absent or not JSON).
json_get() {
  python3 -c 'import json, sys
try:
    v = json.loads(sys.argv[1]).get(sys.argv[2])
except Exception:
    v = None
print("" if v is None else v)' "$1" "$2"
}

# json_find JSON FIELD VALUE: the "id" of the first element of .data whose FIELD equals VALUE.
json_find() {
  python3 -c 'import json, sys
try:
    items = json.loads(sys.argv[1]).get("data") or []
except Exception:
    items = []
print(next((str(i.get("id")) for i in items if str(i.get(sys.argv[2])) == sys.argv[3]), ""))' \
    "$1" "$2" "$3"
}

create_demo() {
  local tenant_id api_key api_key_id channel_id
  say "first run: creating the demo tenant, API key and WhatsApp channel"

  api POST /v1/tenants '{"name":"Demo Shop","slug":"demo"}'
  case "$API_STATUS" in
  200 | 201) tenant_id=$(json_get "$API_BODY" id) ;;
  409) # left over from an earlier var/ without demo.json: reuse it
    api GET '/v1/tenants?limit=500'
    [ "$API_STATUS" = 200 ] || demo_fail "GET /v1/tenants"
    tenant_id=$(json_find "$API_BODY" slug demo)
    ;;
  *) demo_fail "POST /v1/tenants" ;;
  esac
  [ -n "$tenant_id" ] || demo_fail "POST /v1/tenants (no tenant id)"

  api POST "/v1/tenants/$tenant_id/api-keys" '{"name":"demo"}'
  case "$API_STATUS" in
  200 | 201) ;;
  *) demo_fail "POST /v1/tenants/$tenant_id/api-keys" ;;
  esac
  api_key=$(json_get "$API_BODY" key)
  api_key_id=$(json_get "$API_BODY" id)
  [ -n "$api_key" ] || demo_fail "POST /v1/tenants/$tenant_id/api-keys (no key)"

  api POST "/v1/tenants/$tenant_id/channels" "{\"type\":\"whatsapp_cloud\",\
\"phone_number_id\":\"$DEMO_PHONE_NUMBER_ID\",\"waba_id\":\"$DEMO_WABA_ID\",\
\"display_phone_number\":\"$DEMO_DISPLAY_PHONE\",\"access_token\":\"demo-access-token\"}"
  case "$API_STATUS" in
  200 | 201) channel_id=$(json_get "$API_BODY" id) ;;
  409) # the number is registered already: find it with the tenant's key
    api GET '/v1/channels?limit=500' "" "$api_key"
    [ "$API_STATUS" = 200 ] || demo_fail "GET /v1/channels"
    channel_id=$(json_find "$API_BODY" phone_number_id "$DEMO_PHONE_NUMBER_ID")
    ;;
  *) demo_fail "POST /v1/tenants/$tenant_id/channels" ;;
  esac
  [ -n "$channel_id" ] || demo_fail "POST /v1/tenants/$tenant_id/channels (no channel id)"

  (
    umask 077
    python3 -c 'import json, sys
keys = ["tenant_id", "api_key_id", "api_key", "channel_id", "phone_number_id"]
doc = dict(zip(keys, sys.argv[2:]))
doc["tenant_slug"] = "demo"
with open(sys.argv[1], "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")' "$DEMO.tmp" "$tenant_id" "$api_key_id" "$api_key" "$channel_id" \
      "$DEMO_PHONE_NUMBER_ID"
  )
  chmod 600 "$DEMO.tmp"
  mv "$DEMO.tmp" "$DEMO"
}

load_demo() {
  local fields
  mapfile -t fields < <(python3 -c 'import json, sys
d = json.load(open(sys.argv[1]))
for k in ("tenant_id", "api_key", "channel_id"):
    print(d.get(k) or "")' "$DEMO" 2>/dev/null || true)
  DEMO_TENANT_ID=${fields[0]:-}
  DEMO_API_KEY=${fields[1]:-}
  DEMO_CHANNEL_ID=${fields[2]:-}
  [ -n "$DEMO_TENANT_ID" ] && [ -n "$DEMO_API_KEY" ] && [ -n "$DEMO_CHANNEL_ID" ]
}

if [ -f "$DEMO" ] && load_demo; then
  # var/demo.json may outlive the database it describes (e.g. var/pg removed by hand).
  api GET "/v1/tenants/$DEMO_TENANT_ID"
  if [ "$API_STATUS" = 404 ]; then
    say "var/demo.json names a tenant the database does not have; creating the demo again"
    rm -f "$DEMO"
  fi
else
  rm -f "$DEMO"
fi
if [ ! -f "$DEMO" ]; then
  create_demo
  load_demo || die "could not read back var/demo.json"
fi

# The demo number is not a real WhatsApp number: its channel sends to the fake Graph API of the
# test suite (tests/fakes/fake_graph.py, Meta's contract on loopback), so replies can be tried
# end to end. PARLEY_DEMO_FAKE_GRAPH=0 leaves the channel's Graph URL alone.
FAKE_GRAPH_URL=""
if [ "${PARLEY_DEMO_FAKE_GRAPH:-1}" != 0 ]; then
  rm -f "$FAKE_GRAPH_OUT"
  python3 "$PARLEY_ROOT/tests/fakes/fake_graph.py" --port 0 >"$FAKE_GRAPH_OUT" 2>>"$FAKE_GRAPH_LOG" </dev/null &
  fake_pid=$!
  for _ in $(seq 1 100); do
    [ -s "$FAKE_GRAPH_OUT" ] && break
    alive "$fake_pid" || break
    sleep 0.1
  done
  FAKE_GRAPH_URL=$(json_get "$(head -n 1 "$FAKE_GRAPH_OUT" 2>/dev/null || true)" url)
  [ -n "$FAKE_GRAPH_URL" ] || die "the fake Graph API did not start (log: var/log/fake-graph.log)"
  api PATCH "/v1/tenants/$DEMO_TENANT_ID/channels/$DEMO_CHANNEL_ID" "{\"graph_base_url\":\"$FAKE_GRAPH_URL\"}"
  [ "$API_STATUS" = 200 ] || demo_fail "PATCH /v1/tenants/$DEMO_TENANT_ID/channels/$DEMO_CHANNEL_ID"
fi

# A fresh sample webhook each run: a new wamid (Parley dedupes by wamid, so re-posting the same
# file shows idempotency) and a current timestamp (it opens the 24-hour window).
now=$(date +%s)
wamid="wamid.DEMO$(date +%Y%m%d%H%M%S)$(openssl rand -hex 6 | tr 'a-f' 'A-F')"
(
  umask 022
  cat >"$SAMPLE" <<EOF
{
  "object": "whatsapp_business_account",
  "entry": [
    {
      "id": "$DEMO_WABA_ID",
      "changes": [
        {
          "value": {
            "messaging_product": "whatsapp",
            "metadata": {
              "display_phone_number": "${DEMO_DISPLAY_PHONE#+}",
              "phone_number_id": "$DEMO_PHONE_NUMBER_ID"
            },
            "contacts": [
              { "profile": { "name": "Ada Lovelace" }, "wa_id": "15550001234" }
            ],
            "messages": [
              {
                "from": "15550001234",
                "id": "$wamid",
                "timestamp": "$now",
                "type": "text",
                "text": { "body": "Hello from the Parley quickstart!" }
              }
            ]
          },
          "field": "messages"
        }
      ]
    }
  ]
}
EOF
)

# ---------------------------------------------------------------------------------------------
# What to do next.

q_secrets=$(printf '%q' "$SECRETS")
q_sample=$(printf '%q' "$SAMPLE")
cat <<EOF

Parley is running at $BASE  (pid $parley_pid, log var/log/parley.log)

  admin token  PARLEY_ADMIN_TOKEN in $SECRETS
  tenant       Demo Shop (slug demo)  id $DEMO_TENANT_ID
  API key      $DEMO_API_KEY
  channel      $DEMO_CHANNEL_ID  (whatsapp_cloud, phone_number_id $DEMO_PHONE_NUMBER_ID)
  PostgreSQL   $PARLEY_DB_URL
  Redis        $PARLEY_REDIS_URL
  (ids and key are kept in var/demo.json)

Try it from another terminal:

  # load the local secrets into your shell
  set -a; . $q_secrets; set +a

  # 1. an inbound WhatsApp text message, signed the way Meta signs it (body: var/sample-webhook.json,
  #    new wamid each run; posting the same body again is deduplicated)
  sig=\$(openssl dgst -sha256 -hmac "\$PARLEY_WHATSAPP_APP_SECRET" < $q_sample | sed 's/^.*= //')
  curl -sS -i -X POST $BASE/webhooks/whatsapp -H 'Content-Type: application/json' -H "X-Hub-Signature-256: sha256=\$sig" --data-binary @$q_sample

  # 2. read it back with the demo tenant's API key (then .../v1/conversations/<id>/messages)
  curl -sS $BASE/v1/conversations -H 'Authorization: Bearer $DEMO_API_KEY'

  # 3. reply (the customer wrote within 24 hours, so free-form text is allowed); 202 = durable,
  #    then GET /v1/messages/<id> shows it sent, and /attempts every call to the Graph API
  curl -sS -X POST $BASE/v1/messages -H 'Authorization: Bearer $DEMO_API_KEY' -H 'Content-Type: application/json' --data '{"to":"15550001234","type":"text","text":{"body":"Thanks, we are on it!"},"client_message_id":"demo-reply-1"}'
EOF
if [ -n "$FAKE_GRAPH_URL" ]; then
  cat <<EOF

  # what the (fake) Graph API at $FAKE_GRAPH_URL received
  curl -sS $FAKE_GRAPH_URL/_fake/requests
EOF
fi
cat <<EOF

  # health, metrics, the live actor tree (admin token), Meta's subscription handshake
  curl -sS -i $BASE/health/ready
  curl -sS $BASE/metrics
  curl -sS $BASE/v1/admin/actors -H "Authorization: Bearer \$PARLEY_ADMIN_TOKEN"
  curl -sS "$BASE/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=\$PARLEY_WHATSAPP_VERIFY_TOKEN&hub.challenge=42"

Ctrl-C stops Parley, Redis and PostgreSQL (data stays in var/; make distclean wipes it).
Parley's log follows.

EOF

tail -n 0 -F "$PARLEY_LOG" 2>/dev/null &
tail_pid=$!

rc=0
wait "$parley_pid" || rc=$?
parley_pid=""
rm -f "$PARLEY_PID_FILE"
if [ "$rc" -ne 0 ]; then
  sleep 0.3 # let tail print the last lines
  say "parley exited with code $rc (log: var/log/parley.log)"
  exit "$rc"
fi
say "parley exited"
