#!/usr/bin/env bash
# `npm run build:provider`: builds terraform-provider-sigil into terraform/provider/bin/, and lays it out
# as a local filesystem mirror (bin/mirror/registry.terraform.io/sigil/sigil/VERSION/OS_ARCH/) so that
# `terraform init` works with the dev_overrides configuration in examples/quickstart/dev.tfrc.example
# (sigil/sigil is not in the public registry, and this machine may have no network).
set -euo pipefail
cd "$(dirname "$0")/../terraform/provider"
version=0.1.0
go build -o bin/terraform-provider-sigil -ldflags "-X main.version=$version" .
platform="$(go env GOOS)_$(go env GOARCH)"
mirror="bin/mirror/registry.terraform.io/sigil/sigil/$version/$platform"
mkdir -p "$mirror"
cp bin/terraform-provider-sigil "$mirror/terraform-provider-sigil_v$version"
