data "sigil_trust_domain" "prod" {
  name = "prod.example.org"
}

output "x509_max_ttl" {
  value = data.sigil_trust_domain.prod.x509_max_ttl
}
