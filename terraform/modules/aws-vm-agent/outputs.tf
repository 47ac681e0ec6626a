output "launch_template_id" {
  description = "The launch template's ID (for an aws_autoscaling_group or aws_instance)."
  value       = aws_launch_template.agent.id
}

output "launch_template_latest_version" {
  description = "The launch template's latest version."
  value       = aws_launch_template.agent.latest_version
}

output "user_data" {
  description = "The rendered user data script (holds no secret: aws_iid needs none)."
  value       = local.user_data
}
