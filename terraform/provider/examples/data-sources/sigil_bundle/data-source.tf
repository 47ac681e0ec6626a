data "sigil_bundle" "prod" {
  trust_domain = "prod.example.org"
}

# The roots as PEM, e.g. for a proxy's CA file.
resource "local_file" "bundle" {
  filename = "${path.module}/prod-bundle.pem"
  content  = data.sigil_bundle.prod.pem
}

# The SPIFFE bundle (JWK Set) for a federating SPIRE server.
output "jwt_key_ids" {
  value = [for k in jsondecode(data.sigil_bundle.prod.spiffe).keys : k.kid if k.use == "jwt-svid"]
}
