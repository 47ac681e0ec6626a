# A tunnel is imported as TRUST_DOMAIN/NAME.
terraform import sigil_tunnel.db prod.example.org/db
