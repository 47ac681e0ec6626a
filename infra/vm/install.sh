#!/bin/sh
# Installs the Sigil agent (default) or trust service on a systemd VM. POSIX sh, idempotent: running it
# again with the same flags leaves the same files; secrets are never printed.
#
#   install.sh --server URL --trust-domain TD --trust-bundle FILE (--join-token T | --attestor aws_iid)
#              [--attestor-option KEY=VALUE ...] [--source DIR|TARBALL] [--root DIR] [--no-npm]
#   install.sh --component server [--source DIR|TARBALL] [--root DIR] [--no-npm]
#
#   --root DIR      install into DIR as the filesystem root (for images and tests); never runs systemctl
#   --source        the sigil source tree or a .tar.gz of it (default: the tree this script is in)
#   --no-npm        do not run `npm ci --omit=dev` in /opt/sigil (node_modules provided otherwise)
#   --skip-node-check  do not require Node.js >= 20 on PATH (e.g. when building an image with --root)
set -eu

say() { printf '[sigil-install] %s\n' "$*"; }
die() {
  printf '[sigil-install] error: %s\n' "$*" >&2
  exit 2
}

SCRIPT_DIR=$(CDPATH='' cd -- "$(dirname -- "$0")" && pwd)
ROOT=/
SOURCE=$(CDPATH='' cd -- "$SCRIPT_DIR/../.." && pwd)
COMPONENT=agent
SERVER=''
TRUST_DOMAIN=''
TRUST_BUNDLE=''
JOIN_TOKEN=''
ATTESTOR=''
ATTESTOR_OPTIONS=''
RUN_NPM=yes
NODE_CHECK=yes

need_arg() { [ "$#" -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"; }

while [ "$#" -gt 0 ]; do
  case "$1" in
  --root) need_arg "$@"; ROOT=$2; shift 2 ;;
  --source) need_arg "$@"; SOURCE=$2; shift 2 ;;
  --component) need_arg "$@"; COMPONENT=$2; shift 2 ;;
  --server) need_arg "$@"; SERVER=$2; shift 2 ;;
  --trust-domain) need_arg "$@"; TRUST_DOMAIN=$2; shift 2 ;;
  --trust-bundle) need_arg "$@"; TRUST_BUNDLE=$2; shift 2 ;;
  --join-token) need_arg "$@"; JOIN_TOKEN=$2; shift 2 ;;
  --attestor) need_arg "$@"; ATTESTOR=$2; shift 2 ;;
  --attestor-option)
    need_arg "$@"
    case "$2" in
    *=*) ;;
    *) die "--attestor-option must be KEY=VALUE" ;;
    esac
    ATTESTOR_OPTIONS="$ATTESTOR_OPTIONS --attestor-option $2"
    shift 2
    ;;
  --no-npm) RUN_NPM=no; shift ;;
  --skip-node-check) NODE_CHECK=no; shift ;;
  -h | --help)
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *) die "unknown option $1 (see --help)" ;;
  esac
done

# Values end up in a systemd EnvironmentFile and a shell word list: refuse whitespace and quotes.
check_word() {
  case "$2" in
  *[[:space:]\"\'\\\$\`]*) die "$1 must not contain whitespace, quotes, \\, \$ or backquotes" ;;
  esac
}

case "$COMPONENT" in
agent)
  [ -n "$SERVER" ] || die "--server URL is required"
  [ -n "$TRUST_DOMAIN" ] || die "--trust-domain TD is required"
  [ -n "$TRUST_BUNDLE" ] || die "--trust-bundle FILE is required (the server's server-ca.pem)"
  [ -r "$TRUST_BUNDLE" ] || die "cannot read --trust-bundle $TRUST_BUNDLE"
  case "$SERVER" in
  https://*) ;;
  *) die "--server must be an https:// URL" ;;
  esac
  check_word --server "$SERVER"
  check_word --trust-domain "$TRUST_DOMAIN"
  check_word --join-token "$JOIN_TOKEN"
  check_word --attestor "$ATTESTOR"
  check_word --attestor-option "$(printf '%s' "$ATTESTOR_OPTIONS" | tr ' ' '_')"
  if [ -n "$JOIN_TOKEN" ] && [ -n "$ATTESTOR" ]; then die "give --join-token or --attestor, not both"; fi
  if [ -z "$JOIN_TOKEN" ] && [ -z "$ATTESTOR" ]; then die "give --join-token T or --attestor NAME (e.g. aws_iid)"; fi
  ;;
server) ;;
*) die "--component must be agent or server" ;;
esac

ROOT=$(CDPATH='' cd -- "$ROOT" 2>/dev/null && pwd) || die "--root directory does not exist"
R=${ROOT%/}

# --- Node.js 20 ---------------------------------------------------------------------------------------
NODE_BIN=$(command -v node 2>/dev/null || true)
if [ "$NODE_CHECK" = yes ]; then
  [ -n "$NODE_BIN" ] || die "Node.js 20 or newer is required: install it (e.g. https://deb.nodesource.com, apt-get install nodejs) and run this again"
  NODE_MAJOR=$("$NODE_BIN" -p 'process.versions.node.split(".")[0]')
  [ "$NODE_MAJOR" -ge 20 ] || die "Node.js $("$NODE_BIN" --version) is too old: Sigil needs Node.js 20 or newer"
  say "Node.js $("$NODE_BIN" --version) at $NODE_BIN"
fi
[ -n "$NODE_BIN" ] || NODE_BIN=/usr/bin/node

# --- the sigil user -------------------------------------------------------------------------------------
if [ -z "$R" ]; then
  if ! getent passwd sigil >/dev/null 2>&1; then
    nologin=$(command -v nologin 2>/dev/null || echo /usr/sbin/nologin)
    useradd --system --user-group --home-dir /var/lib/sigil --no-create-home --shell "$nologin" sigil
    say "created system user sigil"
  fi
else
  # A root directory: write the entries directly (useradd --root would need the target's PAM setup).
  mkdir -p "$R/etc"
  touch "$R/etc/passwd" "$R/etc/group"
  if ! grep -q '^sigil:' "$R/etc/group"; then echo 'sigil:x:10001:' >>"$R/etc/group"; fi
  if ! grep -q '^sigil:' "$R/etc/passwd"; then
    echo 'sigil:x:10001:10001:Sigil:/var/lib/sigil:/usr/sbin/nologin' >>"$R/etc/passwd"
  fi
fi

# --- /opt/sigil ------------------------------------------------------------------------------------------
DEST="$R/opt/sigil"
mkdir -p "$DEST"
if [ -f "$SOURCE" ]; then
  # A tarball (its top directory, if any, is stripped when it holds package.json one level down).
  tmp=$(mktemp -d)
  tar -xzf "$SOURCE" -C "$tmp"
  src=$tmp
  if [ ! -f "$tmp/package.json" ]; then
    for d in "$tmp"/*; do [ -f "$d/package.json" ] && src=$d; done
  fi
  [ -f "$src/package.json" ] || die "$SOURCE holds no sigil source tree (no package.json)"
  (cd "$src" && tar -cf - .) | (cd "$DEST" && tar -xf -)
  rm -rf "$tmp"
elif [ -d "$SOURCE" ]; then
  [ -f "$SOURCE/package.json" ] && [ -f "$SOURCE/bin/sigil.js" ] || die "$SOURCE is not a sigil source tree"
  # node_modules is rebuilt for production below; the native addon's build is kept.
  (cd "$SOURCE" && tar -cf - --exclude=./.git --exclude=./node_modules --exclude=./.sigil --exclude=./.tap \
    --exclude=./terraform --exclude=./test --exclude=./bench --exclude=./.setup-stamp .) | (cd "$DEST" && tar -xf -)
else
  die "--source $SOURCE is neither a directory nor a tarball"
fi
chmod -R go-w "$DEST"
say "placed the sigil source tree in $DEST"
if [ "$RUN_NPM" = yes ]; then
  command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js 20 with npm, or pass --no-npm"
  (cd "$DEST" && npm ci --omit=dev --no-audit --no-fund --loglevel=error)
fi
if [ "$COMPONENT" = agent ] && ! ls "$DEST"/agents/native/build/Release/*.node >/dev/null 2>&1; then
  say "warning: the agent's native addon is not built in $DEST/agents/native/build: run \`npm run build:native\` there (needs gcc, make, python3)"
fi
if [ ! -f "$DEST/dist/.built" ]; then
  say "note: no compiled build in $DEST/dist: sigil runs its TypeScript sources through tsx (about 35 MiB more memory per process); run \`npm run build\` in the source tree before installing to ship it"
fi

# --- configuration and units ------------------------------------------------------------------------------
install -d -m 0755 "$R/etc/sigil" "$R/etc/systemd/system"

# Writes stdin to FILE with MODE atomically (no window in which the file is readable by others).
write_file() {
  (
    umask 077
    tmp="$1.tmp.$$"
    cat >"$tmp"
    chmod "$2" "$tmp"
    mv -f "$tmp" "$1"
  )
}

UNIT=sigil-$COMPONENT.service
sed "s#/usr/bin/node #$NODE_BIN #" "$SCRIPT_DIR/$UNIT" | write_file "$R/etc/systemd/system/$UNIT" 0644
say "installed $R/etc/systemd/system/$UNIT"

if [ "$COMPONENT" = agent ]; then
  # install(1) + cat keeps it POSIX; the bundle is public.
  cat "$TRUST_BUNDLE" | write_file "$R/etc/sigil/server-ca.pem" 0644
  if [ -n "$JOIN_TOKEN" ]; then
    # The token goes into a 0600 file read through --attestor-config, never onto the command line
    # (which every user can read in /proc/<pid>/cmdline).
    printf 'token: %s\n' "$JOIN_TOKEN" | write_file "$R/etc/sigil/join-token.yaml" 0600
    AGENT_ARGS="--attestor join_token --attestor-config /etc/sigil/join-token.yaml"
  else
    rm -f "$R/etc/sigil/join-token.yaml"
    AGENT_ARGS="--attestor $ATTESTOR$ATTESTOR_OPTIONS"
  fi
  write_file "$R/etc/sigil/agent.env" 0600 <<EOF
# Written by infra/vm/install.sh; read by sigil-agent.service.
SIGIL_SERVER=$SERVER
SIGIL_TRUST_DOMAIN=$TRUST_DOMAIN
SIGIL_TRUST_BUNDLE=/etc/sigil/server-ca.pem
SIGIL_AGENT_ARGS=$AGENT_ARGS
EOF
  say "wrote $R/etc/sigil/agent.env (mode 0600)"
else
  if [ ! -f "$R/etc/sigil/server.env" ]; then
    # The key-encryption key of the CA keys: generated once, kept on reinstall.
    kek=$(head -c 32 /dev/urandom | base64 | tr -d '\n')
    printf '# Written by infra/vm/install.sh; read by sigil-server.service. Keep SIGIL_KEK secret.\nSIGIL_KEK=%s\n' "$kek" |
      write_file "$R/etc/sigil/server.env" 0600
    say "wrote $R/etc/sigil/server.env with a new SIGIL_KEK (mode 0600)"
  else
    chmod 0600 "$R/etc/sigil/server.env"
    say "kept the existing $R/etc/sigil/server.env"
  fi
fi

# --- systemd ---------------------------------------------------------------------------------------------
if [ -n "$R" ]; then
  say "installed into $ROOT; not running systemctl. On the target: systemctl daemon-reload && systemctl enable --now $UNIT"
elif [ "$(cat /proc/1/comm 2>/dev/null)" != systemd ] || ! command -v systemctl >/dev/null 2>&1; then
  say "systemd is not PID 1 here: $UNIT is installed but not enabled. Under systemd run: systemctl daemon-reload && systemctl enable --now $UNIT"
else
  systemctl daemon-reload
  systemctl enable "$UNIT" >/dev/null 2>&1
  systemctl restart "$UNIT"
  say "enabled and (re)started $UNIT"
fi
