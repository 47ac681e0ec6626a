# prod.example.org trusts partner.example, another Sigil installation, whose bundle endpoint has a
# certificate from that installation's service CA (its server-ca.pem).
resource "sigil_federation" "partner" {
  trust_domain         = "prod.example.org"
  foreign_trust_domain = "partner.example"
  bundle_endpoint_url  = "https://sigil.partner.example:8443/v1/federation/partner.example/bundle"
  ca_bundle_pem        = file("${path.module}/partner-server-ca.pem")
}

# prod.example.org trusts a SPIRE server's trust domain: its bundle endpoint presents the SPIRE
# server's X509-SVID (https_spiffe), authenticated with SPIRE's current bundle the first time
# (`spire-server bundle show -format spiffe`).
resource "sigil_federation" "spire" {
  trust_domain         = "prod.example.org"
  foreign_trust_domain = "spire.example"
  bundle_endpoint_url  = "https://spire-server.internal:8443"
  profile              = "https_spiffe"
  endpoint_spiffe_id   = "spiffe://spire.example/spire/server"
  trust_bundle         = file("${path.module}/spire-bundle.json")
}

# Workloads of this entry receive partner.example's bundle through the Workload API.
resource "sigil_registration_entry" "web" {
  trust_domain   = "prod.example.org"
  spiffe_id      = "spiffe://prod.example.org/web"
  parent_id      = "spiffe://prod.example.org/sigil/agent/join_token/node-1"
  selectors      = ["unix:uid:1000"]
  federates_with = [sigil_federation.partner.foreign_trust_domain]
}
