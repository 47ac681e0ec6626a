// Optional EC2 checks for aws_iid: the instance must exist in the server's account view and be
// running, and may be required to carry tags, security groups and an IAM instance profile. They need
// the server's AWS credentials (ec2:DescribeInstances), from the SDK's usual sources.

import {
  DescribeInstancesCommand,
  type DescribeInstancesCommandOutput,
  EC2Client,
  type Instance,
} from '@aws-sdk/client-ec2'
import { failed, quote, unavailable } from '../errors.ts'

export interface Ec2Api {
  send(command: DescribeInstancesCommand): Promise<DescribeInstancesCommandOutput>
}

/** Builds the EC2 client for a region (and endpoint, for moto in tests). */
export type Ec2ClientFactory = (opts: { region: string; endpoint?: string }) => Ec2Api

export const defaultEc2Client: Ec2ClientFactory = ({ region, endpoint }) =>
  new EC2Client({ region, ...(endpoint ? { endpoint } : {}), maxAttempts: 2 })

export interface Ec2Checks {
  endpoint?: string
  region?: string
  requireRunning?: boolean
  requireTags?: Record<string, string>
  requireSecurityGroups?: string[]
  /** The ARN of the instance's IAM instance profile, as DescribeInstances reports it. */
  requireIamRole?: string
}

export interface Ec2Facts {
  tags: { key: string; value: string }[]
  securityGroups: string[]
  iamInstanceProfile?: string
}

export interface InstanceRef {
  accountId: string
  region: string
  instanceId: string
  availabilityZone: string
}

const NOT_FOUND = new Set(['InvalidInstanceID.NotFound', 'InvalidInstanceID.Malformed'])

async function describe(client: Ec2Api, ref: InstanceRef, label: string) {
  let out: DescribeInstancesCommandOutput
  try {
    out = await client.send(new DescribeInstancesCommand({ InstanceIds: [ref.instanceId] }))
  } catch (err) {
    const name = (err as { name?: string }).name ?? ''
    if (NOT_FOUND.has(name)) throw failed(`aws_iid: EC2 does not know ${label} (${name})`, err)
    throw unavailable(
      `aws_iid: EC2 DescribeInstances for ${label} failed (${name || (err as Error).message})`,
      err,
    )
  }
  for (const reservation of out.Reservations ?? []) {
    const instance = reservation.Instances?.find((i) => i.InstanceId === ref.instanceId)
    if (instance) return { instance, ownerId: reservation.OwnerId }
  }
  throw failed(`aws_iid: EC2 does not know ${label}`)
}

function facts(instance: Instance): Ec2Facts {
  return {
    tags: (instance.Tags ?? [])
      .filter((t) => typeof t.Key === 'string' && typeof t.Value === 'string')
      .map((t) => ({ key: t.Key!, value: t.Value! })),
    securityGroups: (instance.SecurityGroups ?? []).map((g) => g.GroupId).filter((g): g is string => !!g),
    iamInstanceProfile: instance.IamInstanceProfile?.Arn,
  }
}

export async function checkInstance(client: Ec2Api, ref: InstanceRef, checks: Ec2Checks): Promise<Ec2Facts> {
  const label = `instance ${ref.instanceId} (account ${ref.accountId}, ${ref.region})`
  const { instance, ownerId } = await describe(client, ref, label)
  if (ownerId !== undefined && ownerId !== ref.accountId) {
    throw failed(`aws_iid: ${label}: EC2 says the instance belongs to account ${ownerId}, not the document's`)
  }
  const zone = instance.Placement?.AvailabilityZone
  if (zone !== undefined && zone !== ref.availabilityZone) {
    throw failed(`aws_iid: ${label}: EC2 places it in ${zone}, the document in ${ref.availabilityZone}`)
  }
  if (checks.requireRunning !== false && instance.State?.Name !== 'running') {
    throw failed(`aws_iid: ${label} is ${instance.State?.Name ?? 'in an unknown state'}, not running`)
  }
  const found = facts(instance)
  for (const [key, value] of Object.entries(checks.requireTags ?? {})) {
    const tag = found.tags.find((t) => t.key === key)
    if (!tag) throw failed(`aws_iid: ${label} lacks the required tag ${quote(key)}`)
    if (tag.value !== value) {
      throw failed(
        `aws_iid: ${label} has tag ${quote(key)} = ${quote(tag.value)}, not the required ${quote(value)}`,
      )
    }
  }
  for (const group of checks.requireSecurityGroups ?? []) {
    if (!found.securityGroups.includes(group)) {
      throw failed(
        `aws_iid: ${label} is not in the required security group ${group} (it has: ${found.securityGroups.join(', ') || 'none'})`,
      )
    }
  }
  if (checks.requireIamRole !== undefined && found.iamInstanceProfile !== checks.requireIamRole) {
    throw failed(
      `aws_iid: ${label} has instance profile ${quote(found.iamInstanceProfile ?? 'none')}, not the required ${quote(checks.requireIamRole)}`,
    )
  }
  return found
}
