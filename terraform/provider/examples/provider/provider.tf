terraform {
  required_providers {
    sigil = {
      source = "sigil/sigil"
    }
  }
}

variable "sigil_token" {
  type      = string
  sensitive = true
}

# Every argument can come from the environment instead: SIGIL_SERVER, SIGIL_TOKEN, SIGIL_CA_BUNDLE.
provider "sigil" {
  server    = "https://sigil.internal.example.org:8443"
  token     = var.sigil_token
  ca_bundle = "/etc/sigil/server-ca.pem" # the server's server-ca.pem: a path or the PEM contents
}
