# A federation is imported as TRUST_DOMAIN/FOREIGN_TRUST_DOMAIN. trust_bundle is not read back.
terraform import sigil_federation.partner prod.example.org/partner.example
