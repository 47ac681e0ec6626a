output "name" {
  description = "The trust domain's name."
  value       = sigil_trust_domain.this.name
}

output "created_at" {
  description = "When the trust domain was created (RFC 3339)."
  value       = sigil_trust_domain.this.created_at
}

output "entry_ids" {
  description = "The server-assigned ID of each registration entry, by the key used in `entries`."
  value       = merge({ for k, e in sigil_registration_entry.this : k => e.id }, { for k, e in sigil_registration_entry.nested : k => e.id })
}

output "join_token" {
  description = "The join token's secret (for `sigil agent run --join-token` or infra/vm/install.sh), or null. Known only to the run that created it."
  value       = one(sigil_join_token.this[*].token)
  sensitive   = true
}

output "join_token_id" {
  description = "The join token's ID (SHA-256 of the secret), or null."
  value       = one(sigil_join_token.this[*].id)
}

output "join_token_expires_at" {
  description = "When the join token stops being usable (RFC 3339), or null."
  value       = one(sigil_join_token.this[*].expires_at)
}

output "policy_version" {
  description = "The version of the trust domain's policy after this configuration was applied, or null when `policy` is not set."
  value       = one(sigil_policy.this[*].version)
}

output "tunnel_ids" {
  description = "The ID (`TRUST_DOMAIN/NAME`) of each tunnel, by its name."
  value       = { for k, t in sigil_tunnel.this : k => t.id }
}
