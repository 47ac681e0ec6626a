# A node entry: the agent that attested with join token "node-1" is also known as .../node/node-1.
resource "sigil_registration_entry" "node" {
  trust_domain = sigil_trust_domain.prod.name
  spiffe_id    = "spiffe://prod.example.org/node/node-1"
  parent_id    = "spiffe://prod.example.org/sigil/agent/join_token/node-1"
  selectors    = ["join_token:token:node-1"]
}

# A workload entry under that node: processes of uid 1000 running /usr/bin/web.
resource "sigil_registration_entry" "web" {
  trust_domain = sigil_trust_domain.prod.name
  spiffe_id    = "spiffe://prod.example.org/web"
  parent_id    = sigil_registration_entry.node.spiffe_id
  selectors    = ["unix:uid:1000", "unix:path:/usr/bin/web"]
  x509_ttl     = "30m"
  jwt_ttl      = "5m"
  dns_names    = ["web.prod.example.org"]
  expires_at   = "2030-01-01T00:00:00Z"
}
