variable "name" {
  description = "The trust domain name, e.g. `prod.example.org`: lowercase letters, digits, `.`, `-` and `_`, no scheme, port or path."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9._-]+$", var.name)) && length(var.name) <= 255
    error_message = "name must be a SPIFFE trust domain name: lowercase letters, digits, '.', '-' and '_', at most 255 characters, no scheme, port or path."
  }
}

variable "key_type" {
  description = "Key type of the trust domain's root CA: `ec-p256`, `ec-p384`, `rsa-2048` or `rsa-3072`. Null: the server's default. Changing it replaces the trust domain."
  type        = string
  default     = null

  validation {
    condition     = var.key_type == null ? true : contains(["ec-p256", "ec-p384", "rsa-2048", "rsa-3072"], var.key_type)
    error_message = "key_type must be one of ec-p256, ec-p384, rsa-2048, rsa-3072."
  }
}

variable "ttls" {
  description = "Lifetimes (durations such as `1h`, `30m`, `7d`): `ca`, `x509_default`, `x509_max`, `jwt_default`, `jwt_max`. Unset ones take the server's defaults."
  type = object({
    ca           = optional(string)
    x509_default = optional(string)
    x509_max     = optional(string)
    jwt_default  = optional(string)
    jwt_max      = optional(string)
  })
  default = {}

  validation {
    condition = alltrue([
      for v in values(var.ttls) : v == null ? true : can(regex("^([0-9]+|([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?)$", v)) && v != ""
    ])
    error_message = "Each TTL must be a duration such as \"90s\", \"5m\", \"1h30m\" or \"7d\", or a number of seconds."
  }
}

variable "policy_mode" {
  description = "How agents enforce network policy: `baseline` (observe, report unidentified traffic) or `explicit` (only what a rule allows). With `policy` set, this is the default of `policy.mode`, and the policy alone sets the mode."
  type        = string
  default     = "baseline"

  validation {
    condition     = contains(["baseline", "explicit"], var.policy_mode)
    error_message = "policy_mode must be baseline or explicit."
  }
}

variable "entries" {
  description = <<-EOT
    Registration entries, keyed by a name of your choice (the key is only the Terraform address). Each:
    `spiffe_id` and `parent_id` (in this trust domain), `selectors` (`TYPE:KEY[:VALUE]`, all must match),
    and optionally `x509_ttl`, `jwt_ttl`, `dns_names`, `federates_with`, `admin`, `downstream`, `expires_at`.
  EOT
  type = map(object({
    spiffe_id      = string
    parent_id      = string
    selectors      = list(string)
    x509_ttl       = optional(string)
    jwt_ttl        = optional(string)
    dns_names      = optional(list(string), [])
    federates_with = optional(list(string), [])
    admin          = optional(bool, false)
    downstream     = optional(bool, false)
    expires_at     = optional(string)
  }))
  default = {}

  validation {
    condition = alltrue([
      for e in values(var.entries) :
      startswith(e.spiffe_id, "spiffe://${var.name}/") && startswith(e.parent_id, "spiffe://${var.name}/")
    ])
    error_message = "Every entry's spiffe_id and parent_id must be SPIFFE IDs with a path in this trust domain (spiffe://NAME/...)."
  }

  validation {
    condition = alltrue([
      for e in values(var.entries) :
      length(e.selectors) > 0 && alltrue([for s in e.selectors : can(regex("^[a-z0-9_]+:[^:]+(:.+)?$", s))])
    ])
    error_message = "Every entry needs at least one selector, each TYPE:KEY[:VALUE] (e.g. unix:uid:1000, k8s:ns:prod)."
  }

  validation {
    condition = alltrue([
      for e in values(var.entries) : alltrue([
        for p in values(var.entries) : !contains([for q in values(var.entries) : q.spiffe_id], p.parent_id) if p.spiffe_id == e.parent_id
      ])
    ])
    error_message = "An entry may be parented to another entry of the map only one level deep: that parent entry's own parent_id must be an agent or the server, not a third entry."
  }
}

variable "join_token" {
  description = "Set to create a single-use join token for one agent: `ttl` (default `1h`, at most `30d`) and optional `spiffe_id` the agent gets. Null: no token."
  type = object({
    ttl       = optional(string, "1h")
    spiffe_id = optional(string)
  })
  default = null

  validation {
    condition     = var.join_token == null ? true : (var.join_token.spiffe_id == null ? true : startswith(var.join_token.spiffe_id, "spiffe://${var.name}/sigil/agent/"))
    error_message = "join_token.spiffe_id must be an agent ID in this trust domain: spiffe://NAME/sigil/agent/..."
  }
}

variable "policy" {
  description = <<-EOT
    The trust domain's network policy (a `sigil_policy`), or null to leave the policy alone. `mode`
    (default: `policy_mode`), `allow_within` (selector keys such as `k8s:ns`), and `rules`, in order, each:
    `name`, optional `action` (`allow` or `deny`, default `allow`), `from` (`spiffe_id` and/or `selector`)
    and `to` (`spiffe_id`, `selector` or `fqdn`, optional `ports` such as `["5432", "8000-8100"]`).
  EOT
  type = object({
    mode         = optional(string)
    allow_within = optional(list(string), [])
    rules = optional(list(object({
      name   = string
      action = optional(string, "allow")
      from = object({
        spiffe_id = optional(string)
        selector  = optional(string)
      })
      to = object({
        spiffe_id = optional(string)
        selector  = optional(string)
        fqdn      = optional(string)
        ports     = optional(list(string))
      })
    })), [])
  })
  default = null

  validation {
    condition     = var.policy == null ? true : (var.policy.mode == null ? true : contains(["baseline", "explicit"], var.policy.mode))
    error_message = "policy.mode must be baseline or explicit."
  }

  validation {
    condition = var.policy == null ? true : alltrue([
      for r in var.policy.rules :
      can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", r.name)) && contains(["allow", "deny"], r.action)
    ])
    error_message = "Every policy rule needs a name of 1 to 128 letters, digits, '.', '-' and '_' (starting with a letter or digit), and an action of allow or deny."
  }

  validation {
    condition     = var.policy == null ? true : length(distinct([for r in var.policy.rules : r.name])) == length(var.policy.rules)
    error_message = "Policy rule names must be unique."
  }

  validation {
    condition = var.policy == null ? true : alltrue([
      for r in var.policy.rules :
      (r.from.spiffe_id != null || r.from.selector != null) &&
      (r.to.spiffe_id != null || r.to.selector != null || r.to.fqdn != null) &&
      !(r.to.spiffe_id != null && r.to.fqdn != null)
    ])
    error_message = "Every policy rule's from needs a spiffe_id or a selector, and its to a spiffe_id, a selector or an fqdn (fqdn and spiffe_id cannot be combined: write two rules)."
  }

  validation {
    condition = var.policy == null ? true : alltrue([
      for r in var.policy.rules : alltrue([
        for id in compact([r.from.spiffe_id, r.to.spiffe_id]) : startswith(id, "spiffe://${var.name}/")
      ])
    ])
    error_message = "Policy rules may only name SPIFFE IDs of this trust domain (spiffe://NAME/...; a whole path segment may be *)."
  }

  validation {
    condition = var.policy == null ? true : alltrue([
      for r in var.policy.rules : r.to.ports == null ? true : length(r.to.ports) > 0 && alltrue([
        for p in r.to.ports : can(regex("^[0-9]{1,5}(-[0-9]{1,5})?$", p)) && alltrue([for n in split("-", p) : try(tonumber(n) >= 1 && tonumber(n) <= 65535, false)])
      ])
    ])
    error_message = "Policy ports must be ports (\"443\") or ranges (\"8000-8100\") between 1 and 65535; leave ports out (null) to allow every port."
  }
}

variable "tunnels" {
  description = <<-EOT
    Tunnels through the broker (`sigil_tunnel`), keyed by the tunnel's name (what callers' agents write
    as `tunnel: NAME`). Each: `spiffe_id` (the service's, in this trust domain), `agent` (the agent that
    offers the service, `spiffe://NAME/sigil/agent/...`), and optionally `service` (its name in that
    agent's proxy configuration, default: the key) and `port`. Any change replaces the tunnel.
  EOT
  type = map(object({
    spiffe_id = string
    agent     = string
    service   = optional(string)
    port      = optional(number)
  }))
  default = {}

  validation {
    condition     = alltrue([for k in keys(var.tunnels) : can(regex("^[a-z0-9]([a-z0-9.-]{0,61}[a-z0-9])?$", k))])
    error_message = "Tunnel names (the keys of tunnels) must be DNS labels: 1 to 63 lowercase letters, digits, '-' and '.', starting and ending with a letter or digit."
  }

  validation {
    condition = alltrue([
      for t in values(var.tunnels) : startswith(t.spiffe_id, "spiffe://${var.name}/") && startswith(t.agent, "spiffe://${var.name}/sigil/agent/")
    ])
    error_message = "Each tunnel's spiffe_id must be a SPIFFE ID of this trust domain (spiffe://NAME/...), and its agent the SPIFFE ID of an agent of it (spiffe://NAME/sigil/agent/...)."
  }

  validation {
    condition     = alltrue([for t in values(var.tunnels) : t.port == null ? true : t.port >= 1 && t.port <= 65535 && floor(t.port) == t.port])
    error_message = "A tunnel's port must be a whole number between 1 and 65535 (or null)."
  }
}
