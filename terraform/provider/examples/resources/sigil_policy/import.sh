# A policy is imported by its trust domain's name (a trust domain has one policy).
terraform import sigil_policy.prod prod.example.org
