// Selectors in the contract's spelling (SPIRE's where SPIRE has one): `TYPE:KEY[:VALUE]`, stored as
// { type: TYPE, value: 'KEY[:VALUE]' }. Parsing is strict so a typo cannot silently match nothing.

import { quote, SigilError } from '../errors.ts'
import type { Selector } from '../store/store.ts'

type ValueCheck = (value: string) => string | undefined

const any: ValueCheck = (v) => (v.length > 0 ? undefined : 'must not be empty')
const integer: ValueCheck = (v) => (/^[0-9]{1,10}$/.test(v) ? undefined : 'must be a non-negative integer')
const absolutePath: ValueCheck = (v) => (v.startsWith('/') ? undefined : 'must be an absolute path')
const sha256: ValueCheck = (v) => (/^[0-9a-f]{64}$/.test(v) ? undefined : 'must be 64 lowercase hex digits')
const keyValue: ValueCheck = (v) => (/^[^:]+:.*$/.test(v) ? undefined : 'must be KEY:VALUE')

/** Known selector types and, for each, its keys and how the rest of the value is checked. */
export const selectorKinds: Record<string, { scope: 'workload' | 'node'; keys: Record<string, ValueCheck> }> =
  {
    unix: {
      scope: 'workload',
      keys: { uid: integer, gid: integer, user: any, group: any, path: absolutePath, sha256 },
    },
    k8s: {
      scope: 'workload',
      keys: {
        ns: any,
        sa: any,
        'pod-label': keyValue,
        'pod-name': any,
        'pod-uid': any,
        'container-image': any,
        'container-name': any,
        'node-name': any,
      },
    },
    join_token: { scope: 'node', keys: { token: any } },
    aws_iid: {
      scope: 'node',
      keys: { account: any, region: any, 'instance-id': any, tag: keyValue, sg: any, iamrole: any, az: any },
    },
    k8s_psat: {
      scope: 'node',
      keys: {
        cluster: any,
        agent_ns: any,
        agent_sa: any,
        agent_node_name: any,
        agent_pod_name: any,
        agent_node_uid: any,
      },
    },
    gcp_iit: { scope: 'node', keys: { 'project-id': any, zone: any, 'instance-name': any, sa: any } },
    azure_msi: {
      scope: 'node',
      keys: { 'subscription-id': any, 'tenant-id': any, 'vm-name': any, 'resource-group': any },
    },
    x509pop: { scope: 'node', keys: { subject: keyValue, 'ca-fingerprint': sha256, 'san-uri': any } },
  }

function invalid(input: string, why: string): SigilError {
  return new SigilError(
    'SELECTOR_INVALID',
    `selector ${quote(input)} ${why}; write selectors as TYPE:KEY[:VALUE], e.g. unix:uid:1000 or k8s:ns:prod`,
  )
}

export function parseSelector(input: string): Selector {
  if (typeof input !== 'string') throw new TypeError('selector must be a string')
  if (input.length > 1024) throw invalid(input, 'is longer than 1024 characters')
  if (/[\u0000-\u001f\u007f]/.test(input)) throw invalid(input, 'contains control characters')
  const first = input.indexOf(':')
  if (first <= 0) throw invalid(input, 'has no type')
  const type = input.slice(0, first)
  const value = input.slice(first + 1)
  const kind = selectorKinds[type]
  if (!kind)
    throw invalid(input, `has unknown type ${quote(type)} (known: ${Object.keys(selectorKinds).join(', ')})`)
  const second = value.indexOf(':')
  const key = second < 0 ? value : value.slice(0, second)
  const rest = second < 0 ? '' : value.slice(second + 1)
  const check = kind.keys[key]
  if (!check) {
    throw invalid(
      input,
      `has unknown key ${quote(key)} for type ${type} (known: ${Object.keys(kind.keys).join(', ')})`,
    )
  }
  const problem = check(rest)
  if (problem) throw invalid(input, `: the value of ${type}:${key} ${problem}`)
  return { type, value }
}

export function formatSelector(s: Selector): string {
  return `${s.type}:${s.value}`
}

/** Canonical order: the store's uniqueness key and stable output depend on it. */
export function sortSelectors(selectors: Selector[]): Selector[] {
  return [...selectors].sort((a, b) =>
    a.type === b.type ? a.value.localeCompare(b.value) : a.type.localeCompare(b.type),
  )
}
