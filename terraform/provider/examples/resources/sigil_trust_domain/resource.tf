resource "sigil_trust_domain" "prod" {
  name             = "prod.example.org"
  key_type         = "ec-p384" # forces a new trust domain when changed
  x509_default_ttl = "1h"
  x509_max_ttl     = "12h"
  jwt_default_ttl  = "5m"
  jwt_max_ttl      = "1h"
  policy_mode      = "baseline"
}
