output "namespace" {
  description = "The namespace the agent runs in."
  value       = local.namespace
}

output "daemonset_name" {
  description = "The agent DaemonSet's name."
  value       = kubernetes_daemon_set_v1.agent.metadata[0].name
}

output "service_account" {
  description = "The agent's ServiceAccount as NAMESPACE:NAME, the form the trust domain's k8s_psat allowedServiceAccounts uses."
  value       = "${local.namespace}:${kubernetes_service_account_v1.agent.metadata[0].name}"
}

output "socket_path" {
  description = "The Workload API socket on every node (hostPath); mount /run/sigil into workloads."
  value       = "/run/sigil/agent.sock"
}

output "node_selector_example" {
  description = "The node selector that the agents of this cluster get after attestation."
  value       = "k8s_psat:cluster:${var.cluster_name}"
}
