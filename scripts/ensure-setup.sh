#!/usr/bin/env bash
# pretest/prestart: quick when everything is in place, `npm run setup` otherwise.
cd "$(dirname "$0")/.."
if [ -d node_modules ] && [ -f .setup-stamp ] && [ "$(cat .setup-stamp)" = "$(scripts/setup-stamp.sh)" ] \
  && [ -f agents/native/build/Release/sigil_native.node ] \
  && command -v redis-server >/dev/null && command -v openssl >/dev/null; then
  exit 0
fi
exec bash scripts/setup.sh
