// JSON schema fragments shared by routes. Every object schema refuses unknown properties.

export const errorSchema = {
  type: 'object',
  properties: {
    error: {
      type: 'object',
      properties: {
        code: { type: 'string' },
        message: { type: 'string' },
        details: {
          type: 'object',
          additionalProperties: true,
          description: 'where in the input the problem is, when known (POLICY_INVALID: line, column, path)',
        },
      },
      required: ['code', 'message'],
    },
  },
} as const

export const trustDomainParams = {
  type: 'object',
  properties: { trustDomain: { type: 'string', maxLength: 255 } },
  required: ['trustDomain'],
} as const

export const idParams = {
  type: 'object',
  properties: { trustDomain: { type: 'string', maxLength: 255 }, id: { type: 'string', maxLength: 128 } },
  required: ['trustDomain', 'id'],
} as const

export const ttl = { type: 'integer', description: 'seconds' } as const
export const spiffeId = {
  type: 'string',
  maxLength: 4096,
  description: 'a SPIFFE ID, spiffe://TRUST_DOMAIN/path',
} as const
export const dnsNames = { type: 'array', items: { type: 'string', maxLength: 253 }, maxItems: 64 } as const

export const settingsSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    keyType: { type: 'string', enum: ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072'] },
    caTtl: ttl,
    x509DefaultTtl: ttl,
    x509MaxTtl: ttl,
    jwtDefaultTtl: ttl,
    jwtMaxTtl: ttl,
    policyMode: { type: 'string', enum: ['baseline', 'explicit'] },
  },
} as const

/** Standard error responses, documented on every route. */
export function withErrors<T extends Record<string, unknown>>(responses: T) {
  return { ...responses, '4xx': errorSchema, '5xx': errorSchema }
}
