// aws_iid's EC2 checks against moto's EC2 API: instances made through the real SDK, checked through it.

import {
  CreateSecurityGroupCommand,
  EC2Client,
  RunInstancesCommand,
  StopInstancesCommand,
} from '@aws-sdk/client-ec2'
import t from 'tap'
import { createAwsIidAttestor } from '../../services/attestation/node/aws-iid.ts'
import { tempDir } from '../helpers/tools.ts'
import { refused } from './helpers/assert.ts'
import { identityDocument, makeSigner, signRsa } from './helpers/aws.ts'
import { attestationContext } from './helpers/context.ts'
import { motoIam, startMoto } from './helpers/moto.ts'

const moto = await startMoto(t)
const ec2 = new EC2Client({ region: 'us-east-1', endpoint: moto.endpoint, credentials: moto.credentials })
const profileArn = /<Arn>(.*?)<\/Arn>/.exec(
  await motoIam(moto, { Action: 'CreateInstanceProfile', InstanceProfileName: 'sigil-node' }),
)![1]!
const { GroupId: sgId } = await ec2.send(
  new CreateSecurityGroupCommand({ GroupName: 'nodes', Description: 'sigil nodes' }),
)
const { GroupId: otherSg } = await ec2.send(
  new CreateSecurityGroupCommand({ GroupName: 'other', Description: 'other' }),
)

async function runInstance(opts: {
  tags?: Record<string, string>
  sg?: string
  profile?: boolean
  zone?: string
}) {
  const out = await ec2.send(
    new RunInstancesCommand({
      ImageId: 'ami-12c6146b',
      MinCount: 1,
      MaxCount: 1,
      Placement: { AvailabilityZone: opts.zone ?? 'us-east-1b' },
      ...(opts.sg ? { SecurityGroupIds: [opts.sg] } : {}),
      ...(opts.profile ? { IamInstanceProfile: { Name: 'sigil-node' } } : {}),
      ...(opts.tags
        ? {
            TagSpecifications: [
              {
                ResourceType: 'instance',
                Tags: Object.entries(opts.tags).map(([Key, Value]) => ({ Key, Value })),
              },
            ],
          }
        : {}),
    }),
  )
  return out.Instances![0]!.InstanceId!
}

const dir = tempDir(t)
const signer = makeSigner(dir, 'aws-rsa', 'rsa')
const base = {
  allowAnyAccount: true,
  allowReattest: true,
  regionCertificates: { 'us-east-1': signer.certPem },
  useBuiltInCertificates: false,
}
const attestor = createAwsIidAttestor({
  ec2Client: ({ region, endpoint }) => new EC2Client({ region, endpoint, credentials: moto.credentials }),
})

function evidenceFor(instanceId: string, overrides: Record<string, unknown> = {}) {
  const document = identityDocument({ instanceId, ...overrides })
  return { document, signature: signRsa(document, signer) }
}

const node = await runInstance({
  tags: { role: 'node', env: 'prod', 'aws:cloudformation:stack-name': 'nodes' },
  sg: sgId!,
  profile: true,
})
const bare = await runInstance({ sg: otherSg! })

t.test(
  'a running instance with the required tags, group and profile attests, with their selectors',
  async (t) => {
    const { ctx } = await attestationContext(t, {
      config: {
        ...base,
        ec2: {
          endpoint: moto.endpoint,
          requireTags: { role: 'node' },
          requireSecurityGroups: [sgId],
          requireIamRole: profileArn,
        },
      },
    })
    const step = await attestor.attest(evidenceFor(node), ctx)
    if (!step.done) throw new Error('aws_iid has one round')
    t.equal(step.result.agentId, `spiffe://example.org/sigil/agent/aws_iid/123456789012/us-east-1/${node}`)
    t.same(
      step.result.selectors.map((s) => s.value).sort(),
      [
        'account:123456789012',
        'az:us-east-1b',
        `iamrole:${profileArn}`,
        `instance-id:${node}`,
        'region:us-east-1',
        `sg:${sgId}`,
        'tag:env:prod',
        'tag:role:node',
      ].sort(),
      'every tag but the one whose key has a colon',
    )
  },
)

t.test('instances that fail an EC2 requirement are refused, naming the requirement', async (t) => {
  const ec2Config = (extra: Record<string, unknown>) => ({
    ...base,
    ec2: { endpoint: moto.endpoint, ...extra },
  })
  const { ctx, with: withConfig } = await attestationContext(t, {
    config: ec2Config({ requireTags: { role: 'node' } }),
  })
  await refused(
    t,
    attestor.attest(evidenceFor(bare), ctx),
    'ATTESTATION_FAILED',
    new RegExp(`instance ${bare} .* lacks the required tag "role"`),
  )
  await refused(
    t,
    attestor.attest(evidenceFor(node), withConfig(ec2Config({ requireTags: { role: 'db' } }))),
    'ATTESTATION_FAILED',
    /has tag "role" = "node", not the required "db"/,
  )
  await refused(
    t,
    attestor.attest(evidenceFor(bare), withConfig(ec2Config({ requireSecurityGroups: [sgId] }))),
    'ATTESTATION_FAILED',
    new RegExp(`not in the required security group ${sgId} \\(it has: ${otherSg}\\)`),
  )
  await refused(
    t,
    attestor.attest(evidenceFor(bare), withConfig(ec2Config({ requireIamRole: profileArn }))),
    'ATTESTATION_FAILED',
    /has instance profile "none", not the required/,
  )
  await refused(
    t,
    attestor.attest(evidenceFor('i-0123456789abcdef0'), withConfig(ec2Config({}))),
    'ATTESTATION_FAILED',
    /EC2 does not know instance i-0123456789abcdef0 .*InvalidInstanceID.NotFound/,
  )
  await refused(
    t,
    attestor.attest(evidenceFor(node, { accountId: '111111111111' }), withConfig(ec2Config({}))),
    'ATTESTATION_FAILED',
    /belongs to account 123456789012, not the document's/,
  )
  await refused(
    t,
    attestor.attest(evidenceFor(node, { availabilityZone: 'us-east-1a' }), withConfig(ec2Config({}))),
    'ATTESTATION_FAILED',
    /EC2 places it in us-east-1b, the document in us-east-1a/,
  )
})

t.test('a stopped instance is refused unless requireRunning is false', async (t) => {
  const stopped = await runInstance({})
  await ec2.send(new StopInstancesCommand({ InstanceIds: [stopped] }))
  const { ctx, with: withConfig } = await attestationContext(t, {
    config: { ...base, ec2: { endpoint: moto.endpoint } },
  })
  await refused(
    t,
    attestor.attest(evidenceFor(stopped), ctx),
    'ATTESTATION_FAILED',
    /is (stopped|stopping), not running/,
  )
  const step = await attestor.attest(
    evidenceFor(stopped),
    withConfig({ ...base, ec2: { endpoint: moto.endpoint, requireRunning: false } }),
  )
  t.ok(step.done)
})

t.test(
  'EC2 unreachable is an upstream error, and a refused attempt does not use up the instance',
  async (t) => {
    const once = { ...base, allowReattest: false }
    const { ctx, with: withConfig } = await attestationContext(t, {
      config: { ...once, ec2: { endpoint: 'http://127.0.0.1:9' } },
    })
    await refused(
      t,
      attestor.attest(evidenceFor(node), ctx),
      'ATTESTATION_UPSTREAM_UNAVAILABLE',
      new RegExp(`EC2 DescribeInstances for instance ${node} .* failed`),
    )
    await refused(
      t,
      attestor.attest(
        evidenceFor(node),
        withConfig({ ...once, ec2: { endpoint: moto.endpoint, requireTags: { role: 'db' } } }),
      ),
      'ATTESTATION_FAILED',
      /not the required "db"/,
    )
    const step = await attestor.attest(
      evidenceFor(node),
      withConfig({ ...once, ec2: { endpoint: moto.endpoint } }),
    )
    t.equal(step.done && step.result.canReattest, false, 'the first accepted attestation claims the instance')
    await refused(
      t,
      attestor.attest(evidenceFor(node), withConfig({ ...once, ec2: { endpoint: moto.endpoint } })),
      'ATTESTATION_REPLAYED',
      /already attested/,
    )
  },
)
