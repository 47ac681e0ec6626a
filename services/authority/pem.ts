// PEM <-> DER for certificates and keys.

export function derToPem(der: Uint8Array, label: string): string {
  const b64 = Buffer.from(der).toString('base64')
  const lines = b64.match(/.{1,64}/g) ?? []
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`
}

/** The DER of the first PEM block (of any label, or of `label` when given). */
export function pemToDer(pem: string, label?: string): Buffer {
  const blocks = pemBlocks(pem, label)
  if (blocks.length === 0) throw new TypeError(`no PEM ${label ?? ''} block found`)
  return blocks[0]!
}

export function pemBlocks(pem: string, label?: string): Buffer[] {
  const re = /-----BEGIN ([A-Z0-9 ]+)-----([\s\S]*?)-----END \1-----/g
  const out: Buffer[] = []
  for (const m of pem.matchAll(re)) {
    if (label && m[1] !== label) continue
    out.push(Buffer.from(m[2]!.replace(/\s+/g, ''), 'base64'))
  }
  return out
}
