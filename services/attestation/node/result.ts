// Building attestation results: agent SPIFFE IDs and node selectors from verified data only.

import type { Selector } from '../../store/store.ts'
import { failed, quote } from '../errors.ts'

const SEGMENT = /^[A-Za-z0-9._-]{1,255}$/

/** spiffe://TD/sigil/agent/<attestor>/<segments...>; each segment must be a valid SPIFFE path segment. */
export function agentId(trustDomain: string, attestor: string, ...segments: string[]): string {
  for (const s of segments) {
    if (!SEGMENT.test(s) || s === '.' || s === '..') {
      throw failed(
        `${attestor}: ${quote(s)} cannot be part of an agent SPIFFE ID (allowed: letters, digits, '.', '-', '_')`,
      )
    }
  }
  return `spiffe://${trustDomain}/sigil/agent/${attestor}/${segments.join('/')}`
}

export function selector(type: string, value: string): Selector {
  return { type, value }
}

/**
 * Selectors of one attestor. Values come from verified evidence, but a certificate CN or a cloud tag
 * may still hold characters a selector cannot (control characters, over 1024); those are left out
 * rather than failing the node's attestation.
 */
export class Selectors {
  readonly list: Selector[] = []

  constructor(private readonly type: string) {}

  add(key: string, value: string | undefined): this {
    if (value === undefined || value === '') return this
    const full = `${key}:${value}`
    if (full.length + this.type.length + 1 > 1024 || /[\u0000-\u001f\u007f]/.test(full)) return this
    this.list.push({ type: this.type, value: full })
    return this
  }
}
