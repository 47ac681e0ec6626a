variable "namespace" {
  description = "Namespace of the agent DaemonSet, its ServiceAccount and ConfigMap."
  type        = string
  default     = "sigil-system"

  validation {
    condition     = can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.namespace)) && length(var.namespace) <= 63
    error_message = "namespace must be a DNS-1123 label (lowercase letters, digits and '-', at most 63 characters)."
  }
}

variable "create_namespace" {
  description = "Whether to create the namespace (with the `privileged` Pod Security level the agent needs). False: it must exist."
  type        = bool
  default     = true
}

variable "server_url" {
  description = "The Sigil trust service the agents attest to, `https://HOST:PORT`."
  type        = string

  validation {
    condition     = can(regex("^https://[^/\\s]+(:[0-9]+)?/?$", var.server_url))
    error_message = "server_url must be an https:// URL with a host and optional port, and no path."
  }
}

variable "server_ca_pem" {
  description = "The trust service's CA certificate (its `server-ca.pem`), PEM. Stored in the ConfigMap `sigil-server-ca`."
  type        = string

  validation {
    condition     = can(regex("-----BEGIN CERTIFICATE-----", var.server_ca_pem))
    error_message = "server_ca_pem must hold a PEM certificate (-----BEGIN CERTIFICATE-----)."
  }
}

variable "trust_domain" {
  description = "The trust domain the agents join, e.g. `prod.example.org`."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9._-]+$", var.trust_domain))
    error_message = "trust_domain must be a SPIFFE trust domain name: lowercase letters, digits, '.', '-' and '_'."
  }
}

variable "cluster_name" {
  description = "This cluster's name for `k8s_psat` (the key in the trust domain's nodeAttestors.k8s_psat.clusters; selector `k8s_psat:cluster:NAME`)."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+$", var.cluster_name))
    error_message = "cluster_name may hold letters, digits, '.', '-' and '_' only."
  }
}

variable "image" {
  description = "The agent container image (infra/docker/Dockerfile.agent)."
  type        = string
  default     = "ghcr.io/sigil-dev/sigil-agent:latest"

  validation {
    condition     = length(trimspace(var.image)) > 0
    error_message = "image must not be empty."
  }
}

variable "kubelet_url" {
  description = "The kubelet pod list the agent reads to attest pods. The DaemonSet uses the host network, so the node's loopback works."
  type        = string
  default     = "https://127.0.0.1:10250/pods"

  validation {
    condition     = can(regex("^https?://.+/pods$", var.kubelet_url))
    error_message = "kubelet_url must be an http(s) URL ending in /pods."
  }
}

variable "psat_audience" {
  description = "Audience of the projected service account token (must match the trust domain's k8s_psat cluster `audience`)."
  type        = string
  default     = "sigil"

  validation {
    condition     = length(var.psat_audience) > 0
    error_message = "psat_audience must not be empty."
  }
}

variable "resources" {
  description = "Requests and limits of the agent container."
  type = object({
    requests = map(string)
    limits   = map(string)
  })
  default = {
    requests = { cpu = "50m", memory = "96Mi" }
    limits   = { cpu = "500m", memory = "192Mi" }
  }

  validation {
    condition     = contains(keys(var.resources.limits), "cpu") && contains(keys(var.resources.limits), "memory")
    error_message = "resources.limits must set both cpu and memory."
  }
}

variable "labels" {
  description = "Extra labels on every object."
  type        = map(string)
  default     = {}
}
