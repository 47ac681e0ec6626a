variable "name_prefix" {
  description = "Prefix of the launch template's name."
  type        = string
  default     = "sigil-agent-"

  validation {
    condition     = can(regex("^[A-Za-z0-9()./_-]{1,100}$", var.name_prefix))
    error_message = "name_prefix may hold letters, digits and ()./_- only, at most 100 characters."
  }
}

variable "image_id" {
  description = "The AMI (a systemd Linux: Debian, Ubuntu or Amazon Linux 2023)."
  type        = string

  validation {
    condition     = can(regex("^ami-[0-9a-f]{8,17}$", var.image_id))
    error_message = "image_id must be an AMI ID such as ami-0123456789abcdef0."
  }
}

variable "instance_type" {
  description = "EC2 instance type."
  type        = string
  default     = "t3.small"

  validation {
    condition     = can(regex("^[a-z0-9-]+\\.[a-z0-9]+$", var.instance_type))
    error_message = "instance_type must look like t3.small."
  }
}

variable "security_group_ids" {
  description = "Security groups of the instances (they need outbound HTTPS to the trust service)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for s in var.security_group_ids : can(regex("^sg-[0-9a-f]{8,17}$", s))])
    error_message = "security_group_ids must be security group IDs (sg-...)."
  }
}

variable "iam_instance_profile_name" {
  description = "An IAM instance profile for the instances, or null. aws_iid needs none on the instance: the trust service verifies the identity document."
  type        = string
  default     = null
}

variable "server_url" {
  description = "The Sigil trust service, `https://HOST:PORT`."
  type        = string

  validation {
    condition     = can(regex("^https://[^/\\s'\"]+/?$", var.server_url))
    error_message = "server_url must be an https:// URL with a host and optional port, and no path."
  }
}

variable "trust_domain" {
  description = "The trust domain the agents join. Its settings.nodeAttestors.aws_iid must accept the account."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9._-]+$", var.trust_domain))
    error_message = "trust_domain must be a SPIFFE trust domain name: lowercase letters, digits, '.', '-' and '_'."
  }
}

variable "server_ca_pem" {
  description = "The trust service's CA certificate (its `server-ca.pem`), written to the instance for `--trust-bundle`."
  type        = string

  validation {
    condition     = can(regex("-----BEGIN CERTIFICATE-----", var.server_ca_pem))
    error_message = "server_ca_pem must hold a PEM certificate (-----BEGIN CERTIFICATE-----)."
  }
}

variable "sigil_tarball_url" {
  description = "HTTPS URL of a tarball of the sigil source tree (with infra/vm/install.sh), e.g. a release asset or a GitHub archive."
  type        = string

  validation {
    condition     = startswith(var.sigil_tarball_url, "https://") && !can(regex("['\"\\s]", var.sigil_tarball_url))
    error_message = "sigil_tarball_url must be an https:// URL without quotes or whitespace."
  }
}

variable "attestor_options" {
  description = "Extra aws_iid options, passed as `--attestor-option KEY=VALUE`."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for k, v in var.attestor_options : can(regex("^[A-Za-z0-9_.-]+$", k)) && !can(regex("['\"\\s]", v))])
    error_message = "attestor_options keys must be simple names and values must not contain quotes or whitespace."
  }
}

variable "tags" {
  description = "Tags of the launch template and of the instances and volumes it launches (usable as aws_iid:tag selectors)."
  type        = map(string)
  default     = {}
}
