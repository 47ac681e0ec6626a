# An unused join token is imported as TRUST_DOMAIN/TOKEN_ID (the id column of `sigil token list`).
# Its secret cannot be imported: `token` stays null.
terraform import sigil_join_token.node_1 prod.example.org/3f2a...c9
