#!/usr/bin/env bash
# pretest/prestart: quick when everything is in place, `npm run setup` otherwise.
cd "$(dirname "$0")/.."
if [ -d node_modules ] && [ -f .setup-stamp ] && [ "$(cat .setup-stamp)" = "$(scripts/setup-stamp.sh)" ] \
  && [ -f agents/native/build/Release/sigil_native.node ] \
  && command -v redis-server >/dev/null && command -v openssl >/dev/null \
  && [ -x /usr/bin/chromium ] && [ -f services/console/dist/index.html ]; then
  # The console is rebuilt (a second or two) when its sources are newer than the build.
  if [ -n "$(find services/console/app services/console/index.html services/console/vite.config.ts \
      services/registry/selectors.ts -newer services/console/dist/index.html -print -quit)" ]; then
    npm run --silent build:console
  fi
  # So is the compiled JavaScript that bin/sigil.js runs (dist/), when a source is newer than it.
  if [ ! -f dist/.built ] || [ -n "$(find agents services -name '*.ts' -not -path 'services/console/app/*' \
      -newer dist/.built -print -quit)" ]; then
    npm run --silent build
  fi
  exit 0
fi
exec bash scripts/setup.sh
