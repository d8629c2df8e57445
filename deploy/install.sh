#!/usr/bin/env bash
# Installs or upgrades the pneumonia x-ray review on a Debian server; safe to run again (a second run
# with the same release and settings changes nothing and says so).
#
#   sudo deploy/install.sh                       # on the server, from an unpacked release
#   deploy/install.sh --root DIR --venv VENV     # into DIR as if it were / (packaging, tests): no
#                                                # services are started, VENV is linked, not built
#
# Steps: the services' users (systemd-sysusers) and folders (systemd-tmpfiles); the code under
# /opt/pneumonia-review/app and its virtual environment (/opt/pneumonia-review/venv, from
# requirements.txt); the systemd units; the services' settings from /etc/pneumonia-review/site.env;
# placeholders for the secrets, never overwritten; the nginx site; the audit migrations and the app
# role's grants with the owner role (credentials/audit-owner.env); then, on a real server, reloads
# systemd and nginx and (re)starts what changed.
set -euo pipefail
umask 022

SOURCE=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROOT=/
VENV_FROM=""
START=1

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --root) ROOT=$(realpath -m "$2"); START=0; shift 2 ;;
    --venv) VENV_FROM=$(realpath "$2"); shift 2 ;;
    --no-start) START=0; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 2 >&2 ;;
  esac
done
R=${ROOT%/}  # prefix for every path written ("" on a real server)

ETC=/etc/pneumonia-review
CREDS=$ETC/credentials
PREFIX=/opt/pneumonia-review
CHANGED=()
note() { CHANGED+=("$1"); echo "changed: $1"; }

# --- settings -------------------------------------------------------------------------------------
mkdir -p "$R$ETC"
if [ ! -f "$R$ETC/site.env" ]; then
  install -m 0644 "$SOURCE/deploy/site.env.example" "$R$ETC/site.env"
  note "$ETC/site.env (from deploy/site.env.example: fill it in and run install.sh again)"
fi
# shellcheck disable=SC1090,SC1091
. "$R$ETC/site.env"
: "${SERVER_NAME:?site.env must set SERVER_NAME}" "${APP_PORTS:?site.env must set APP_PORTS}"
APP_ADDRESS=${APP_ADDRESS:-127.0.0.1}
HTTPS_PORT=${HTTPS_PORT:-443}
HTTP_PORT=${HTTP_PORT:-80}
LISTEN_ADDRESSES=${LISTEN_ADDRESSES:-"0.0.0.0 [::]"}
AUDIT_HEAD_DIR=${AUDIT_HEAD_DIR:-/var/lib/pneumonia-audit/chain-heads}
AUDIT_APP_ROLE=${AUDIT_APP_ROLE:-pneumonia_app}

# put_file SRC DEST MODE: install SRC at DEST unless it is there already, byte for byte, with MODE
put_file() {
  local src=$1 dest=$2 mode=$3
  if [ -f "$R$dest" ] && cmp -s "$src" "$R$dest" && [ "$(stat -c %a "$R$dest")" = "${mode#0}" ]; then
    return 1
  fi
  install -D -m "$mode" "$src" "$R$dest"
  note "$dest"
}
# put_text DEST MODE: the same for text on stdin
put_text() {
  local tmp rc=0
  tmp=$(mktemp)
  cat >"$tmp"
  put_file "$tmp" "$1" "$2" || rc=$?
  rm -f "$tmp"
  return "$rc"
}

# --- users and folders ----------------------------------------------------------------------------
put_file "$SOURCE/deploy/sysusers.d/pneumonia-review.conf" /etc/sysusers.d/pneumonia-review.conf 0644 || true
put_file "$SOURCE/deploy/tmpfiles.d/pneumonia-review.conf" /etc/tmpfiles.d/pneumonia-review.conf 0644 || true
systemd-sysusers --root="$ROOT" "$R/etc/sysusers.d/pneumonia-review.conf" | sed 's/^/changed: /'
systemd-tmpfiles --create --root="$ROOT" "$R/etc/tmpfiles.d/pneumonia-review.conf"

# --- the code -------------------------------------------------------------------------------------
APP=$PREFIX/app
code_files() {
  (cd "$SOURCE" && find app.py pages pneumonia models assets .streamlit deploy requirements.txt \
    -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -name 'secrets.toml' | LC_ALL=C sort)
}
code_changed=0
while IFS= read -r file; do
  mode=0644
  [ -x "$SOURCE/$file" ] && mode=0755
  if put_file "$SOURCE/$file" "$APP/$file" "$mode" >/dev/null; then code_changed=1; fi
done < <(code_files)
# files of an earlier release that this one no longer has
while IFS= read -r old; do
  rm -f "$R$APP/$old"
  code_changed=1
done < <(comm -13 <(code_files) <(cd "$R$APP" && find . -type f ! -path '*/__pycache__/*' | sed 's#^\./##' | LC_ALL=C sort))
[ "$code_changed" = 1 ] && note "$APP (the release's code)"

# --- the virtual environment ----------------------------------------------------------------------
VENV=$PREFIX/venv
if [ -n "$VENV_FROM" ]; then
  if [ "$(readlink "$R$VENV" || true)" != "$VENV_FROM" ]; then
    rm -rf "$R$VENV"
    ln -s "$VENV_FROM" "$R$VENV"
    note "$VENV (a link to $VENV_FROM)"
  fi
else
  wanted=$(sha256sum "$SOURCE/requirements.txt" | cut -d' ' -f1)
  if [ ! -x "$R$VENV/bin/python" ]; then
    python3.11 -m venv "$R$VENV"
    note "$VENV (created)"
  fi
  if [ "$(cat "$R$VENV/.requirements.sha256" 2>/dev/null || true)" != "$wanted" ]; then
    "$R$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$R$VENV/bin/python" -m pip install --quiet -r "$SOURCE/requirements.txt"
    echo "$wanted" >"$R$VENV/.requirements.sha256"
    note "$VENV (requirements.txt installed)"
  fi
fi

# --- units and the services' settings -------------------------------------------------------------
units_changed=0
for unit in "$SOURCE"/deploy/systemd/*; do
  if put_file "$unit" "/etc/systemd/system/$(basename "$unit")" 0644; then units_changed=1; fi
done
put_text "$ETC/app.env" 0644 <<EOF && units_changed=1 || true
# written by deploy/install.sh from site.env: edit site.env, not this file
PNEUMONIA_APP_ADDRESS=$APP_ADDRESS
EOF
put_text "$ETC/listen.env" 0644 <<EOF && units_changed=1 || true
# written by deploy/install.sh from site.env: edit site.env, not this file
PNEUMONIA_LISTEN_AE_TITLE=${LISTEN_AE_TITLE:-PNEUMONIA}
PNEUMONIA_LISTEN_HOST=${LISTEN_HOST:-0.0.0.0}
PNEUMONIA_LISTEN_PORT=${LISTEN_PORT:-11112}
EOF
put_text "$ETC/audit.env" 0644 <<EOF && units_changed=1 || true
# written by deploy/install.sh from site.env: edit site.env, not this file
PNEUMONIA_AUDIT_HEAD_DIR=$AUDIT_HEAD_DIR
EOF
# a chain-head folder outside the unit's own state folder must be made writable for it
dropin=/etc/systemd/system/pneumonia-audit-verify.service.d/head-folder.conf
case "$AUDIT_HEAD_DIR" in
  /var/lib/pneumonia-audit|/var/lib/pneumonia-audit/*)
    if [ -e "$R$dropin" ]; then rm -f "$R$dropin"; note "$dropin (removed)"; units_changed=1; fi ;;
  *)
    put_text "$dropin" 0644 <<EOF && units_changed=1 || true
# written by deploy/install.sh: the folder that keeps the chain heads (AUDIT_HEAD_DIR in site.env)
[Service]
ReadWritePaths=$AUDIT_HEAD_DIR
EOF
    ;;
esac

# --- secrets: placeholders only where there is nothing yet (never overwritten) --------------------
placeholder() {  # placeholder DEST: stdin becomes DEST (root only) unless DEST exists
  if [ -e "$R$1" ]; then cat >/dev/null; return; fi
  mkdir -p "$(dirname "$R$1")"
  (umask 077 && cat >"$R$1")
  note "$1 (a placeholder: fill it in)"
}
placeholder "$CREDS/secrets.toml" <<EOF
# The app's sign-in (README "Sign-in for named readers"). Every app server must get this same file:
# they all sign the sign-in cookie with cookie_secret, so a reader moved to another server stays
# signed in.
[auth]
redirect_uri = "https://$SERVER_NAME/oauth2callback"
cookie_secret = "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
client_id = "<the app registration's client id>"
client_secret = "<its client secret>"
server_metadata_url = "<the provider's .well-known/openid-configuration URL>"
client_kwargs = { prompt = "login" }
EOF
placeholder "$CREDS/pacs.toml" <<'EOF'
# The PACS (README "Connecting to a PACS"): url, then user and password or token, ca_bundle.
# Empty: no PACS (the app's "Open from PACS" is hidden; the DICOM node refuses to start).
[pacs]
EOF
placeholder "$CREDS/app-audit.env" <<'EOF'
# The audit database as the app's role (read and append only), e.g.
# PNEUMONIA_AUDIT_URL=postgresql://pneumonia_app:<password>@db.hospital.example/pneumonia_audit
EOF
placeholder "$CREDS/audit-read.env" <<'EOF'
# The audit database for the nightly check (a role that may read the reviews; the app's will do)
# PNEUMONIA_AUDIT_URL=postgresql://pneumonia_app:<password>@db.hospital.example/pneumonia_audit
EOF
placeholder "$CREDS/audit-owner.env" <<'EOF'
# The audit database as its owner: used by install.sh only, for the migrations and the app's grants
# PNEUMONIA_AUDIT_URL=postgresql://pneumonia_owner:<password>@db.hospital.example/pneumonia_audit
EOF

# secrets stay readable by root alone (systemd reads them and hands each service its own)
for secret in "$R$CREDS"/*; do
  if [ "$(stat -c %a "$secret")" != 600 ]; then
    chmod 0600 "$secret"
    note "${secret#"$R"} (now readable by root only)"
  fi
done

# --- the nginx site -------------------------------------------------------------------------------
upload_mb=$(sed -n 's/^maxUploadSize *= *\([0-9]*\).*/\1/p' "$SOURCE/.streamlit/config.toml")
ports=($APP_PORTS)
count=${#ports[@]}
route_split="" route_known="" route_kept="" upstreams="" http_listen="" https_listen=""
for i in "${!ports[@]}"; do
  n=$((i + 1))
  if [ "$n" -lt "$count" ]; then
    route_split+="    $(awk -v c="$count" 'BEGIN { printf "%.2f", int(10000 / c) / 100 }')% $n;"$'\n'
  else
    route_split+="    * $n;"
  fi
  route_known+="    \"$n\" $n;"$'\n'
  route_kept+="    \"$n\" \"\";"$'\n'
  upstreams+="upstream pneumonia_review_$n {"$'\n'"    server $APP_ADDRESS:${ports[$i]} max_fails=0;"$'\n'
  for other in "${ports[@]}"; do
    [ "$other" = "${ports[$i]}" ] || upstreams+="    server $APP_ADDRESS:$other backup max_fails=0;"$'\n'
  done
  upstreams+="}"$'\n'
done
for address in $LISTEN_ADDRESSES; do
  http_listen+="    listen $address:$HTTP_PORT;"$'\n'
  https_listen+="    listen $address:$HTTPS_PORT ssl;"$'\n'
done
site=$(<"$SOURCE/deploy/nginx/pneumonia-review.conf.in")
site=${site//@ROUTE_SPLIT@/${route_split%$'\n'}}
site=${site//@ROUTE_KNOWN@/${route_known%$'\n'}}
site=${site//@ROUTE_KEPT@/${route_kept%$'\n'}}
site=${site//@UPSTREAMS@/${upstreams%$'\n'}}
site=${site//@HTTP_LISTEN@/${http_listen%$'\n'}}
site=${site//@HTTPS_LISTEN@/${https_listen%$'\n'}}
site=${site//@SERVER_NAME@/$SERVER_NAME}
site=${site//@HTTPS_PORT@/$HTTPS_PORT}
site=${site//@TLS_CERT@/$TLS_CERT}
site=${site//@TLS_KEY@/$TLS_KEY}
site=${site//@MAX_BODY@/$((upload_mb + 1))m}
nginx_changed=0
put_text /etc/nginx/sites-available/pneumonia-review 0644 < <(printf '%s\n' "$site") && nginx_changed=1
if [ "$(readlink "$R/etc/nginx/sites-enabled/pneumonia-review" || true)" != /etc/nginx/sites-available/pneumonia-review ]; then
  mkdir -p "$R/etc/nginx/sites-enabled"
  ln -sfn /etc/nginx/sites-available/pneumonia-review "$R/etc/nginx/sites-enabled/pneumonia-review"
  note /etc/nginx/sites-enabled/pneumonia-review
  nginx_changed=1
fi

# --- the audit database: migrations and grants, as its owner --------------------------------------
owner_url=$(sed -n 's/^PNEUMONIA_AUDIT_URL=//p' "$R$CREDS/audit-owner.env" | tail -1 | sed "s/^[\"']//; s/[\"']$//")
if [ -n "$owner_url" ]; then
  as_owner=(env PNEUMONIA_AUDIT_URL="$owner_url" "$R$VENV/bin/python" -m pneumonia.audit)
  (cd "$R$APP" && "${as_owner[@]}" upgrade >/dev/null && "${as_owner[@]}" grant --app-role "$AUDIT_APP_ROLE" >/dev/null)
fi

# --- a real server: reload and (re)start what changed ---------------------------------------------
if [ "$START" = 1 ]; then
  services=(pneumonia-listen.service)
  for port in "${ports[@]}"; do services+=("pneumonia-review@$port.service"); done
  if [ "$units_changed" = 1 ]; then systemctl daemon-reload; fi
  systemctl enable --quiet "${services[@]}" pneumonia-audit-verify.timer
  if [ "$units_changed" = 1 ] || [ "$code_changed" = 1 ] || [ "${#CHANGED[@]}" -gt 0 ]; then
    systemctl restart "${services[@]}"
  else
    systemctl start "${services[@]}"
  fi
  systemctl start pneumonia-audit-verify.timer
  if [ "$nginx_changed" = 1 ]; then nginx -t -q && systemctl reload nginx; fi
fi

if [ "${#CHANGED[@]}" -eq 0 ]; then
  echo "nothing changed: the installation is up to date"
else
  echo "${#CHANGED[@]} changes"
fi
