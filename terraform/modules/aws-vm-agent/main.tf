locals {
  attestor_flags = join(" ", [for k in sort(keys(var.attestor_options)) : "--attestor-option ${k}=${var.attestor_options[k]}"])
  user_data = templatefile("${path.module}/user-data.sh.tftpl", {
    server_url     = var.server_url
    trust_domain   = var.trust_domain
    server_ca_pem  = var.server_ca_pem
    tarball_url    = var.sigil_tarball_url
    attestor_flags = local.attestor_flags
  })
}

resource "aws_launch_template" "agent" {
  name_prefix            = var.name_prefix
  image_id               = var.image_id
  instance_type          = var.instance_type
  vpc_security_group_ids = var.security_group_ids
  user_data              = base64encode(local.user_data)
  update_default_version = true

  dynamic "iam_instance_profile" {
    for_each = var.iam_instance_profile_name == null ? [] : [var.iam_instance_profile_name]
    content {
      name = iam_instance_profile.value
    }
  }

  # aws_iid reads the instance identity document through IMDSv2 only.
  metadata_options {
    http_endpoint               = "enabled"
    http_tokens                 = "required"
    http_put_response_hop_limit = 1
    instance_metadata_tags      = "enabled"
  }

  tag_specifications {
    resource_type = "instance"
    tags          = var.tags
  }

  tag_specifications {
    resource_type = "volume"
    tags          = var.tags
  }

  tags = var.tags
}
