# An entry is imported as TRUST_DOMAIN/ENTRY_ID (see `sigil entry list --trust-domain TD`).
terraform import sigil_registration_entry.web prod.example.org/0b6f3c9e-52c1-4d8e-9c1e-6a3f0f2d8b11
