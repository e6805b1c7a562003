#!/bin/bash
# From the project notes (shared/notes/keystone-local.md), used by the Keystone token test.
# Local throw-away Keystone 22 (Zed) for automated tests on Debian 12, as root.
# No systemd, no Apache, no uwsgi: sqlite DB + fernet tokens + Keystone's own
# wsgiref test server (/usr/bin/keystone-wsgi-public).
#
#   ks-recipe.sh all      install (if needed) + setup + start + users + tokens + stop
#   ks-recipe.sh install  apt-get install python3-keystone  (NOT the `keystone` package)
#   ks-recipe.sh setup    conf + db_sync + fernet/credential keys + bootstrap
#   ks-recipe.sh start    start server in background, wait for 200 on GET /v3
#   ks-recipe.sh users    role ecrae-operator, project, users operator/viewer
#   ks-recipe.sh tokens   issue a token per user + validate them (prints timings)
#   ks-recipe.sh stop     kill the server by its PID
#
# Env: KS_DIR (default $TMPDIR/ecrae-keystone), KS_PORT (default: a free port picked once and
# kept in $KS_DIR/port), KS_ADMIN_PW, KS_USER_PW.
set -euo pipefail

KS_DIR=${KS_DIR:-${TMPDIR:-/tmp}/ecrae-keystone}
KS_ADMIN_PW=${KS_ADMIN_PW:-admin-secret}
KS_USER_PW=${KS_USER_PW:-user-secret}
KS_PROJECT=${KS_PROJECT:-ecrae}          # project for the operator/reader users
PY=/usr/bin/python3                      # Debian's python (a pyenv python3 on PATH can't import keystone)
CONF=$KS_DIR/keystone.conf

port() {
  if [ -z "${KS_PORT:-}" ]; then
    if [ -s "$KS_DIR/port" ]; then KS_PORT=$(cat "$KS_DIR/port")
    else KS_PORT=$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'); fi
  fi
  mkdir -p "$KS_DIR"; echo "$KS_PORT" > "$KS_DIR/port"
  URL=http://127.0.0.1:$KS_PORT/v3
}

do_install() {
  # `keystone` (the service package) would create a keystone user, write /etc/keystone,
  # and run `invoke-rc.d keystone start` (uwsgi on :5000) in its postinst; we only need
  # the library + keystone-manage + keystone-wsgi-public, which python3-keystone ships.
  if ! dpkg -s python3-keystone >/dev/null 2>&1; then
    [ -n "$(ls /var/lib/apt/lists/*_Packages 2>/dev/null)" ] || apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-keystone curl
  fi
}

kman() { # keystone-manage; drop the harmless eventlet "Exception ignored ... getcurrent" noise at exit
  keystone-manage --config-file "$CONF" "$@" 2>"$KS_DIR/manage.err" || { cat "$KS_DIR/manage.err" >&2; return 1; }
}

do_setup() {
  port
  rm -rf "$KS_DIR/keystone.db" "$KS_DIR/fernet-keys" "$KS_DIR/credential-keys"
  mkdir -p "$KS_DIR"
  cat > "$CONF" <<EOF
[DEFAULT]
log_file = $KS_DIR/keystone.log
[database]
connection = sqlite:///$KS_DIR/keystone.db
[token]
provider = fernet
expiration = 3600
[fernet_tokens]
key_repository = $KS_DIR/fernet-keys
[fernet_receipts]
key_repository = $KS_DIR/fernet-keys
[credential]
key_repository = $KS_DIR/credential-keys
[identity]
# bcrypt cost 4 instead of 12: password auth ~10 ms instead of ~250 ms (test only)
password_hash_rounds = 4
EOF
  kman db_sync
  # WAL journal: without it the single-process server soon fails every write with
  # "sqlite3.OperationalError: database is locked" (HTTP 500 after a 5 s wait), e.g. on
  # the 2nd role-assignment PUT -- a still-open SELECT cursor keeps a SHARED lock.
  $PY -c "import sqlite3,sys;sqlite3.connect(sys.argv[1]).execute('PRAGMA journal_mode=WAL')" "$KS_DIR/keystone.db"
  # Same result as `keystone-manage fernet_setup/credential_setup --keystone-user root
  # --keystone-group root` (files 0 = staged, 1 = primary), without 2 x ~2.5 s of imports.
  for d in fernet-keys credential-keys; do
    install -d -m 700 "$KS_DIR/$d"
    for k in 0 1; do
      (umask 077; $PY -c 'import base64,os;print(base64.urlsafe_b64encode(os.urandom(32)).decode(),end="")' > "$KS_DIR/$d/$k")
    done
  done
  kman bootstrap --bootstrap-password "$KS_ADMIN_PW" \
    --bootstrap-username admin --bootstrap-project-name admin --bootstrap-role-name admin \
    --bootstrap-region-id RegionOne \
    --bootstrap-admin-url "$URL" --bootstrap-public-url "$URL" --bootstrap-internal-url "$URL"
}

do_start() {
  port
  if [ -s "$KS_DIR/server.pid" ] && kill -0 "$(cat "$KS_DIR/server.pid")" 2>/dev/null; then
    echo "already running, pid $(cat "$KS_DIR/server.pid")"; return 0; fi
  local t0=$(date +%s%N)
  # keystone-wsgi-public's __main__ = wsgiref.simple_server (single-threaded, HTTP/1.0).
  # Args after `--` go to oslo.config.
  setsid keystone-wsgi-public --host 127.0.0.1 --port "$KS_PORT" -- --config-file "$CONF" \
    > "$KS_DIR/server.out" 2>&1 < /dev/null &
  echo $! > "$KS_DIR/server.pid"
  for _ in $(seq 1 300); do   # up to 30 s
    if [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL")" = 200 ]; then
      echo "keystone up on $URL (pid $(cat "$KS_DIR/server.pid")) in $(( ($(date +%s%N)-t0)/1000000 )) ms"; return 0; fi
    kill -0 "$(cat "$KS_DIR/server.pid")" 2>/dev/null || { cat "$KS_DIR/server.out" >&2; return 1; }
    sleep 0.1
  done
  echo "keystone did not answer on $URL" >&2; tail -20 "$KS_DIR/server.out" >&2; return 1
}

do_stop() {
  [ -s "$KS_DIR/server.pid" ] || return 0
  local pid; pid=$(cat "$KS_DIR/server.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null || true
  rm -f "$KS_DIR/server.pid"; echo "stopped pid $pid"
}

# token USER PASSWORD PROJECT -> prints the token (X-Subject-Token header)
token() {
  curl -sf -D - -o /dev/null -H 'Content-Type: application/json' -d '{"auth":{"identity":{"methods":["password"],
    "password":{"user":{"name":"'"$1"'","domain":{"id":"default"},"password":"'"$2"'"}}},
    "scope":{"project":{"name":"'"$3"'","domain":{"id":"default"}}}}}' "$URL/auth/tokens" \
  | awk 'tolower($1)=="x-subject-token:"{print $2}' | tr -d '\r'
}
# api METHOD PATH [JSON] -> body (uses $ADMIN_TOKEN)
api() {
  curl -sf -X "$1" -H "X-Auth-Token: $ADMIN_TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"} "$URL$2"
}
jget() { $PY -c 'import json,sys;d=json.load(sys.stdin)
for k in sys.argv[1].split("."): d=d[int(k)] if k.isdigit() else d[k]
print(d)' "$1"; }

do_users() {
  port
  ADMIN_TOKEN=$(token admin "$KS_ADMIN_PW" admin)
  local role_op role_rd proj u_op u_rd
  role_op=$(api POST /roles '{"role":{"name":"ecrae-operator"}}' | jget role.id)
  role_rd=$(api GET '/roles?name=reader' | jget roles.0.id)        # created by bootstrap
  proj=$(api POST /projects '{"project":{"name":"'"$KS_PROJECT"'","domain_id":"default"}}' | jget project.id)
  u_op=$(api POST /users '{"user":{"name":"operator","domain_id":"default","password":"'"$KS_USER_PW"'","default_project_id":"'"$proj"'"}}' | jget user.id)
  u_rd=$(api POST /users '{"user":{"name":"viewer","domain_id":"default","password":"'"$KS_USER_PW"'","default_project_id":"'"$proj"'"}}' | jget user.id)
  api PUT "/projects/$proj/users/$u_op/roles/$role_op"    # 204, empty body
  api PUT "/projects/$proj/users/$u_rd/roles/$role_rd"
  echo "project $KS_PROJECT=$proj  operator=$u_op (ecrae-operator)  viewer=$u_rd (reader)"
}

do_tokens() {
  port
  local t0 t1 T A name pw proj
  A=$(token admin "$KS_ADMIN_PW" admin)
  for spec in "admin $KS_ADMIN_PW admin" "operator $KS_USER_PW $KS_PROJECT" "viewer $KS_USER_PW $KS_PROJECT"; do
    read -r name pw proj <<<"$spec"
    t0=$(date +%s%N); T=$(token "$name" "$pw" "$proj"); t1=$(date +%s%N)
    [ -n "$T" ] || { echo "no token for $name" >&2; return 1; }
    # validate: GET /v3/auth/tokens, X-Auth-Token = any valid token (a token may validate itself), X-Subject-Token = token to check
    local body; body=$(curl -sf -H "X-Auth-Token: $T" -H "X-Subject-Token: $T" "$URL/auth/tokens")
    local t2=$(date +%s%N)
    echo "$name: issue $(( (t1-t0)/1000000 )) ms, validate $(( (t2-t1)/1000000 )) ms, roles=$(echo "$body" | $PY -c 'import json,sys;print(sorted(r["name"] for r in json.load(sys.stdin)["token"]["roles"]))')"
    # also validated by the admin token (what a service would do)
    curl -sf -o /dev/null -H "X-Auth-Token: $A" -H "X-Subject-Token: $T" "$URL/auth/tokens"
  done
  # an invalid token must give 404
  echo "bogus token -> $(curl -s -o /dev/null -w '%{http_code}' -H "X-Auth-Token: $A" -H 'X-Subject-Token: gAAAAbogus' "$URL/auth/tokens")"
}

case "${1:-all}" in
  install) do_install ;;
  setup)   do_setup ;;
  start)   do_start ;;
  users)   do_users ;;
  tokens)  do_tokens ;;
  stop)    do_stop ;;
  all)     do_install; trap do_stop EXIT
           s=$(date +%s%N); do_setup; echo "setup $(( ($(date +%s%N)-s)/1000000 )) ms"
           do_start; do_users; do_tokens ;;
  *) echo "usage: $0 [all|install|setup|start|users|tokens|stop]" >&2; exit 2 ;;
esac
