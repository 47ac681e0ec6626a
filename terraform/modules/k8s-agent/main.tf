locals {
  labels = merge(var.labels, {
    "app.kubernetes.io/name"    = "sigil-agent"
    "app.kubernetes.io/part-of" = "sigil"
  })
  selector  = { "app.kubernetes.io/name" = "sigil-agent" }
  namespace = var.create_namespace ? kubernetes_namespace_v1.this[0].metadata[0].name : var.namespace
  probe     = ["sh", "-c", "test -S /run/sigil/agent.sock"]
}

resource "kubernetes_namespace_v1" "this" {
  count = var.create_namespace ? 1 : 0
  metadata {
    name = var.namespace
    labels = merge(local.labels, {
      # hostPID, hostNetwork, a hostPath and two added capabilities.
      "pod-security.kubernetes.io/enforce" = "privileged"
    })
  }
}

resource "kubernetes_service_account_v1" "agent" {
  metadata {
    name      = "sigil-agent"
    namespace = local.namespace
    labels    = local.labels
  }
}

# Only the kubelet pod-list read: /pods is authorized as nodes/proxy (get), or nodes/pods (get) with
# the KubeletFineGrainedAuthz feature (Kubernetes >= 1.33).
resource "kubernetes_cluster_role_v1" "agent" {
  metadata {
    name   = "sigil-agent"
    labels = local.labels
  }
  rule {
    api_groups = [""]
    resources  = ["nodes/pods", "nodes/proxy"]
    verbs      = ["get"]
  }
}

resource "kubernetes_cluster_role_binding_v1" "agent" {
  metadata {
    name   = "sigil-agent"
    labels = local.labels
  }
  role_ref {
    api_group = "rbac.authorization.k8s.io"
    kind      = "ClusterRole"
    name      = kubernetes_cluster_role_v1.agent.metadata[0].name
  }
  subject {
    kind      = "ServiceAccount"
    name      = kubernetes_service_account_v1.agent.metadata[0].name
    namespace = local.namespace
  }
}

resource "kubernetes_config_map_v1" "server_ca" {
  metadata {
    name      = "sigil-server-ca"
    namespace = local.namespace
    labels    = local.labels
  }
  data = {
    "server-ca.pem" = var.server_ca_pem
  }
}

resource "kubernetes_daemon_set_v1" "agent" {
  metadata {
    name      = "sigil-agent"
    namespace = local.namespace
    labels    = local.labels
  }

  spec {
    selector {
      match_labels = local.selector
    }
    strategy {
      type = "RollingUpdate"
      rolling_update {
        max_unavailable = "1"
      }
    }

    template {
      metadata {
        labels = local.labels
        annotations = {
          # Roll the agents when the server CA changes.
          "sigil.dev/server-ca-sha256" = sha256(var.server_ca_pem)
        }
      }

      spec {
        service_account_name = kubernetes_service_account_v1.agent.metadata[0].name
        host_pid             = true
        host_network         = true
        dns_policy           = "ClusterFirstWithHostNet"
        priority_class_name  = "system-node-critical"

        toleration {
          operator = "Exists"
        }

        security_context {
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }

        container {
          name              = "agent"
          image             = var.image
          image_pull_policy = "IfNotPresent"
          args = [
            "agent", "run",
            "--server", var.server_url,
            "--trust-domain", var.trust_domain,
            "--trust-bundle", "/etc/sigil/server-ca.pem",
            "--attestor", "k8s_psat",
            "--attestor-option", "cluster=${var.cluster_name}",
            "--attestor-option", "tokenPath=/var/run/secrets/tokens/sigil-agent",
            "--kubelet-url", var.kubelet_url,
            "--socket", "/run/sigil/agent.sock",
            "--data-dir", "/var/lib/sigil-agent",
          ]

          env {
            name  = "NODE_OPTIONS"
            value = "--max-semi-space-size=2 --max-old-space-size=128"
          }

          resources {
            requests = var.resources.requests
            limits   = var.resources.limits
          }

          readiness_probe {
            exec {
              command = local.probe
            }
            initial_delay_seconds = 3
            period_seconds        = 10
          }

          liveness_probe {
            exec {
              command = local.probe
            }
            initial_delay_seconds = 30
            period_seconds        = 20
            failure_threshold     = 6
          }

          security_context {
            run_as_user                = "0"
            run_as_group               = "0"
            privileged                 = false
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
              add  = ["SYS_PTRACE", "DAC_READ_SEARCH"]
            }
          }

          volume_mount {
            name       = "socket-dir"
            mount_path = "/run/sigil"
          }
          volume_mount {
            name       = "psat"
            mount_path = "/var/run/secrets/tokens"
            read_only  = true
          }
          volume_mount {
            name       = "server-ca"
            mount_path = "/etc/sigil"
            read_only  = true
          }
          volume_mount {
            name       = "data"
            mount_path = "/var/lib/sigil-agent"
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }

        volume {
          name = "socket-dir"
          host_path {
            path = "/run/sigil"
            type = "DirectoryOrCreate"
          }
        }
        volume {
          name = "psat"
          projected {
            sources {
              service_account_token {
                path               = "sigil-agent"
                audience           = var.psat_audience
                expiration_seconds = 3600
              }
            }
          }
        }
        volume {
          name = "server-ca"
          config_map {
            name = kubernetes_config_map_v1.server_ca.metadata[0].name
            items {
              key  = "server-ca.pem"
              path = "server-ca.pem"
            }
          }
        }
        volume {
          name = "data"
          empty_dir {
            size_limit = "16Mi"
          }
        }
        volume {
          name = "tmp"
          empty_dir {
            size_limit = "16Mi"
          }
        }
      }
    }
  }
}
