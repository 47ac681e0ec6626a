data "sigil_agents" "prod" {
  trust_domain = "example.org"
}

output "agent_ids" {
  value = [for a in data.sigil_agents.prod.agents : a.spiffe_id]
}
