#!/usr/bin/env bash
# Prints a fingerprint of what `npm run setup` depends on; a changed fingerprint means set up again.
cd "$(dirname "$0")/.."
cat package-lock.json scripts/setup.sh terraform/provider/go.sum terraform/provider/tools/go.sum test/interop/go.sum agents/native/binding.gyp agents/native/peer-credentials.c 2>/dev/null | sha256sum | cut -d' ' -f1
