resource "sigil_join_token" "node_1" {
  trust_domain = sigil_trust_domain.prod.name
  ttl          = "24h"
  spiffe_id    = "spiffe://prod.example.org/sigil/agent/join_token/node-1"
}

# Hand the secret to the machine's provisioning, e.g. cloud-init user data.
output "node_1_join_token" {
  value     = sigil_join_token.node_1.token
  sensitive = true
}
