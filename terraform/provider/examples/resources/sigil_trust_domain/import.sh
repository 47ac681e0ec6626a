# A trust domain is imported by its name.
terraform import sigil_trust_domain.prod prod.example.org
