# The network policy of trust domain prod.example.org: web may reach the database on 5432 and S3 over
# HTTPS, and no shell may reach the database, whatever else allows it.
resource "sigil_policy" "prod" {
  trust_domain = sigil_trust_domain.prod.name
  mode         = "explicit" # only what a rule or allow_within allows; "baseline" observes and reports
  allow_within = ["k8s:ns"] # workloads of one namespace may talk to each other freely

  rule {
    name = "web-to-db"
    from {
      spiffe_id = "spiffe://prod.example.org/web"
    }
    to {
      spiffe_id = "spiffe://prod.example.org/db"
      ports     = ["5432"]
    }
  }

  rule {
    name = "web-to-s3"
    from {
      spiffe_id = "spiffe://prod.example.org/web"
    }
    to {
      fqdn  = "*.s3.amazonaws.com"
      ports = ["443"]
    }
  }

  rule {
    name = "batch-to-api"
    from {
      spiffe_id = "spiffe://prod.example.org/ns/batch/*" # everything under /ns/batch
    }
    to {
      selector = "k8s:pod-label:app:api"
      ports    = ["8000-8100"]
    }
  }

  rule {
    name   = "no-debug-shells"
    action = "deny" # a deny always wins over an allow
    from {
      selector = "unix:path:/bin/sh"
    }
    to {
      spiffe_id = "spiffe://prod.example.org/db"
    }
  }
}
