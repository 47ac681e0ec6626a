# A trust domain, a node entry, a workload entry under it, the trust domain's network policy, and a
# join token for the node's agent.
#
# The provider reads SIGIL_SERVER, SIGIL_TOKEN and SIGIL_CA_BUNDLE (see ../../README.md).

terraform {
  required_providers {
    sigil = {
      source = "sigil/sigil"
    }
  }
}

provider "sigil" {}

variable "trust_domain" {
  type    = string
  default = "quickstart.example.org"
}

# The policy mode is set by sigil_policy.this below, so policy_mode is left unset here.
resource "sigil_trust_domain" "this" {
  name         = var.trust_domain
  x509_max_ttl = "12h"
  jwt_max_ttl  = "1h"
}

# The agent that attests with the join token below becomes .../sigil/agent/join_token/node-1; this entry
# also gives it the name .../node/node-1, under which workload entries are registered.
resource "sigil_registration_entry" "node" {
  trust_domain = sigil_trust_domain.this.name
  spiffe_id    = "spiffe://${sigil_trust_domain.this.name}/node/node-1"
  parent_id    = "spiffe://${sigil_trust_domain.this.name}/sigil/agent/join_token/node-1"
  selectors    = ["join_token:token:node-1"]
}

resource "sigil_registration_entry" "web" {
  trust_domain = sigil_trust_domain.this.name
  spiffe_id    = "spiffe://${sigil_trust_domain.this.name}/web"
  parent_id    = sigil_registration_entry.node.spiffe_id
  selectors    = ["unix:uid:1000", "unix:path:/usr/bin/web"]
  x509_ttl     = "30m"
  dns_names    = ["web.${sigil_trust_domain.this.name}"]
}

# Who may talk to whom. In baseline mode everything else still gets through and is reported (see
# `sigil flows graph` and `sigil policy recommend`); switch to "explicit" once the rules cover it all.
resource "sigil_policy" "this" {
  trust_domain = sigil_trust_domain.this.name
  mode         = "baseline"
  allow_within = ["k8s:ns"]

  rule {
    name = "web-to-db"
    from {
      spiffe_id = sigil_registration_entry.web.spiffe_id
    }
    to {
      spiffe_id = "spiffe://${sigil_trust_domain.this.name}/db"
      ports     = ["5432"]
    }
  }

  rule {
    name = "web-to-s3"
    from {
      spiffe_id = sigil_registration_entry.web.spiffe_id
    }
    to {
      fqdn  = "*.s3.amazonaws.com"
      ports = ["443"]
    }
  }

  rule {
    name   = "no-debug-shells"
    action = "deny"
    from {
      selector = "unix:path:/bin/sh"
    }
    to {
      spiffe_id = "spiffe://${sigil_trust_domain.this.name}/db"
    }
  }
}

resource "sigil_join_token" "node_1" {
  trust_domain = sigil_trust_domain.this.name
  ttl          = "24h"
  spiffe_id    = "spiffe://${sigil_trust_domain.this.name}/sigil/agent/join_token/node-1"
}

data "sigil_bundle" "this" {
  trust_domain = sigil_trust_domain.this.name
}

output "web_entry_id" {
  value = sigil_registration_entry.web.id
}

output "policy_version" {
  value = sigil_policy.this.version
}

output "bundle_sequence" {
  value = data.sigil_bundle.this.sequence
}

output "join_token" {
  description = "terraform output -raw join_token"
  value       = sigil_join_token.node_1.token
  sensitive   = true
}
