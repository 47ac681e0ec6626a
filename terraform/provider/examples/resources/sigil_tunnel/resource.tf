# The database runs in GCP behind the agent spiffe://prod.example.org/sigil/agent/join_token/gcp-db-1;
# agents elsewhere (another cloud, another VPC with the same address range) reach it through the
# broker with `tunnel: db` on an upstream of their proxy configuration. The serving agent lists the
# database under `services:` with the name `postgres`.
resource "sigil_tunnel" "db" {
  trust_domain = "prod.example.org"
  name         = "db"
  spiffe_id    = "spiffe://prod.example.org/db"
  agent        = "spiffe://prod.example.org/sigil/agent/join_token/gcp-db-1"
  service      = "postgres" # defaults to name
  port         = 5432       # optional; lets the broker apply the policy's port rules
}

# Who may use it is the policy's to decide, like any other flow.
resource "sigil_policy" "prod" {
  trust_domain = "prod.example.org"
  mode         = "explicit"

  rule {
    name = "web-to-db"
    from {
      spiffe_id = "spiffe://prod.example.org/web"
    }
    to {
      spiffe_id = sigil_tunnel.db.spiffe_id
      ports     = [tostring(sigil_tunnel.db.port)]
    }
  }
}
