// aws_iid: fetches the instance identity document and AWS's signatures over it from IMDSv2 (a session
// token first, then the document, the PKCS#7 form and the base64 RSA-SHA256 form).

import { unavailable } from '../errors.ts'
import { configObject, HTTP_URL, stringOption, timeoutOption } from './config.ts'
import { metadataRequest } from './http.ts'
import type { AgentNodeAttestor } from './node-attestor.ts'

export const DEFAULT_IMDS_URL = 'http://169.254.169.254'

export interface AwsIidAgentConfig {
  imdsUrl?: string
  timeoutMs?: number
}

export function createAwsIidAgentAttestor(
  config: AwsIidAgentConfig = {},
  deps: { fetch?: typeof fetch } = {},
): AgentNodeAttestor {
  const obj = configObject('aws_iid', config, ['imdsUrl', 'timeoutMs'])
  const base = stringOption('aws_iid', obj, 'imdsUrl', {
    default: DEFAULT_IMDS_URL,
    pattern: HTTP_URL,
    hint: 'an http(s) URL',
  }).replace(/\/+$/, '')
  const timeoutMs = timeoutOption('aws_iid', obj, 2_000)
  const fetchImpl = deps.fetch ?? fetch
  return {
    name: 'aws_iid',
    async evidence() {
      const session = await metadataRequest(fetchImpl, `${base}/latest/api/token`, 'aws_iid IMDSv2 token', {
        method: 'PUT',
        headers: { 'x-aws-ec2-metadata-token-ttl-seconds': '60' },
        timeoutMs,
      })
      const get = (path: string, what: string) =>
        metadataRequest(fetchImpl, `${base}/latest/dynamic/instance-identity/${path}`, `aws_iid ${what}`, {
          headers: { 'x-aws-ec2-metadata-token': session.trim() },
          timeoutMs,
        })
      const document = await get('document', 'identity document')
      const [pkcs7, signature] = await Promise.allSettled([
        get('pkcs7', 'PKCS#7 signature'),
        get('signature', 'signature'),
      ])
      const evidence: { document: string; pkcs7?: string; signature?: string } = { document }
      if (pkcs7.status === 'fulfilled') evidence.pkcs7 = pkcs7.value.trim()
      if (signature.status === 'fulfilled') evidence.signature = signature.value.trim()
      if (!evidence.pkcs7 && !evidence.signature) {
        throw unavailable(
          'aws_iid: IMDS gave neither the PKCS#7 nor the RSA signature of the identity document',
          (pkcs7 as PromiseRejectedResult).reason,
        )
      }
      return evidence
    },
  }
}
