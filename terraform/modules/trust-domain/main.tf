resource "sigil_trust_domain" "this" {
  name             = var.name
  key_type         = var.key_type
  ca_ttl           = var.ttls.ca
  x509_default_ttl = var.ttls.x509_default
  x509_max_ttl     = var.ttls.x509_max
  jwt_default_ttl  = var.ttls.jwt_default
  jwt_max_ttl      = var.ttls.jwt_max
  # With a policy, its mode is the one source of truth (a trust domain's policy_mode writes a policy
  # version): the trust domain then leaves the mode to sigil_policy.this.
  policy_mode = var.policy == null ? var.policy_mode : null
}

locals {
  # An entry whose parent is another entry of the map (a node alias) can only be created after it.
  entry_spiffe_ids = toset([for e in values(var.entries) : e.spiffe_id])
  top_entries      = { for k, e in var.entries : k => e if !contains(local.entry_spiffe_ids, e.parent_id) }
  nested_entries   = { for k, e in var.entries : k => e if contains(local.entry_spiffe_ids, e.parent_id) }
}

resource "sigil_registration_entry" "this" {
  for_each = local.top_entries

  trust_domain   = sigil_trust_domain.this.name
  spiffe_id      = each.value.spiffe_id
  parent_id      = each.value.parent_id
  selectors      = toset(each.value.selectors)
  x509_ttl       = each.value.x509_ttl
  jwt_ttl        = each.value.jwt_ttl
  dns_names      = toset(each.value.dns_names)
  federates_with = toset(each.value.federates_with)
  admin          = each.value.admin
  downstream     = each.value.downstream
  expires_at     = each.value.expires_at
}

resource "sigil_registration_entry" "nested" {
  for_each = local.nested_entries

  trust_domain   = sigil_trust_domain.this.name
  spiffe_id      = each.value.spiffe_id
  parent_id      = each.value.parent_id
  selectors      = toset(each.value.selectors)
  x509_ttl       = each.value.x509_ttl
  jwt_ttl        = each.value.jwt_ttl
  dns_names      = toset(each.value.dns_names)
  federates_with = toset(each.value.federates_with)
  admin          = each.value.admin
  downstream     = each.value.downstream
  expires_at     = each.value.expires_at

  depends_on = [sigil_registration_entry.this]
}

resource "sigil_join_token" "this" {
  count = var.join_token == null ? 0 : 1

  trust_domain = sigil_trust_domain.this.name
  ttl          = var.join_token.ttl
  spiffe_id    = var.join_token.spiffe_id
}

resource "sigil_policy" "this" {
  count = var.policy == null ? 0 : 1

  trust_domain = sigil_trust_domain.this.name
  mode         = coalesce(var.policy.mode, var.policy_mode)
  allow_within = var.policy.allow_within

  dynamic "rule" {
    for_each = var.policy.rules
    content {
      name   = rule.value.name
      action = rule.value.action
      from {
        spiffe_id = rule.value.from.spiffe_id
        selector  = rule.value.from.selector
      }
      to {
        spiffe_id = rule.value.to.spiffe_id
        selector  = rule.value.to.selector
        fqdn      = rule.value.to.fqdn
        ports     = rule.value.to.ports
      }
    }
  }
}

resource "sigil_tunnel" "this" {
  for_each = var.tunnels

  trust_domain = sigil_trust_domain.this.name
  name         = each.key
  spiffe_id    = each.value.spiffe_id
  agent        = each.value.agent
  service      = each.value.service # null: the tunnel's name
  port         = each.value.port
}
