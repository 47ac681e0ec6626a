#!/usr/bin/env bash
# `npm run setup`: everything the server and the tests need on a fresh Debian/Ubuntu machine.
# Idempotent: each step checks first. Where it cannot install a system package it says which and how.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m[setup]\033[0m %s\n' "$*"; }

# System packages the tests use: real redis-server (store tests), openssl and curl (clients), iptables and
# iproute2 (transparent mode and the tunnel test in network namespaces), tcpdump (the capture at the
# broker), haproxy (the reference in `npm run bench`), Debian's chromium and a font (the console's browser
# tests drive it through playwright-core; no browser download).
APT_PACKAGES=(redis-server openssl curl ca-certificates build-essential python3 iptables iproute2 haproxy
  tcpdump chromium fonts-dejavu-core)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    say "installing system packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  elif command -v apt-get >/dev/null && command -v sudo >/dev/null; then
    say "installing system packages with sudo: ${missing[*]}"
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "cannot install ${missing[*]}: install them yourself (Debian/Ubuntu: sudo apt-get install ${missing[*]})"
  fi
fi
# The redis-server package starts a system-wide instance; tests start their own on ephemeral ports.

say "installing npm packages (npm ci)"
npm ci --no-audit --no-fund --loglevel=error

say "building the agent's native addon (SO_PEERCRED, pidfd)"
npm run --silent build:native >/dev/null \
  || { say "the native addon failed to build: it needs gcc, make, python3 and Node's headers (Debian: apt-get install build-essential nodejs)"; exit 1; }

say "building the web console (services/console/dist)"
npm run --silent build:console \
  || { say "the console failed to build: run npm run build:console to see why"; exit 1; }

say "compiling agents/ and services/ to JavaScript (dist/)"
npm run --silent build \
  || { say "the TypeScript build failed: run npm run build to see why"; exit 1; }

node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()" \
  || { say "better-sqlite3 failed to load; run: npm rebuild better-sqlite3"; exit 1; }

# Go modules for the Terraform provider (and its docs generator), from the Go module proxy.
if command -v go >/dev/null; then
  say "fetching Go modules (terraform/provider)"
  (cd terraform/provider && go mod download) && (cd terraform/provider/tools && go mod download)
  say "fetching Go modules (test/interop: go-spiffe)"
  (cd test/interop && go mod download)
else
  say "go not found: install Go 1.25+ (https://go.dev/doc/install) to build and test the Terraform provider"
fi
# moto's server stands in for the EC2 API in the aws_iid attestation tests.
if ! command -v moto_server >/dev/null; then
  say "installing moto (pip install 'moto[server]')"
  python3 -m pip install --quiet 'moto[server]' || say "could not install moto: run python3 -m pip install 'moto[server]'"
fi
command -v terraform >/dev/null || say "terraform not found: the provider's acceptance tests need the terraform binary on PATH"

scripts/setup-stamp.sh > .setup-stamp
say "done"
