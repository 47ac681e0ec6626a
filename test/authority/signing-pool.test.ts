import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { parseCsr } from '../../services/authority/csr.ts'
import { type SigningItem, SigningPool, type SigningResult } from '../../services/authority/signing-pool.ts'
import { tbsOf, X509SvidIssuer } from '../../services/authority/x509-svid.ts'
import { makeCa, opensslCsr, peculiarCsr } from './fixtures/helpers.ts'

const now = Date.now()
const ca = await makeCa('ec-p256')
const csrs = {
  p256: await peculiarCsr('ec-p256'),
  p384: opensslCsr('ec-p384'),
  rsa: await peculiarCsr('rsa-2048'),
  rsa1024: opensslCsr('rsa-1024'),
}
const tampered = Buffer.from(csrs.p256)
tampered[tampered.length - 1]! ^= 1

function item(csrDer: Buffer, i: number, extra: Partial<SigningItem> = {}): SigningItem {
  return {
    csrDer,
    spiffeId: `spiffe://example.org/w/${i}`,
    dnsNames: i % 2 ? [`w${i}.example.org`] : [],
    notBefore: now,
    notAfter: now + 3_600_000,
    ...extra,
  }
}

function okDer(r: SigningResult | undefined): Buffer {
  if (!r?.ok) throw new Error(`expected success, got ${JSON.stringify(r)}`)
  return r.der
}

t.test('workers issue correct certificates, identical to the inline issuer for pinned inputs', async (t) => {
  const errors: Error[] = []
  const pool = new SigningPool({ size: 2, minChunk: 2, onWorkerError: (e) => errors.push(e) })
  t.teardown(() => pool.close())
  pool.setIssuer('int-1', ca.intermediateDer, ca.intermediate.privateKey)
  const inline = new X509SvidIssuer(ca.issuer)
  const items = Array.from({ length: 12 }, (_, i) =>
    item([csrs.p256, csrs.p384, csrs.rsa][i % 3]!, i, {
      serial: Buffer.from((0x1000 + i).toString(16).padStart(32, '0'), 'hex'),
    }),
  )
  const results = await pool.issue('int-1', items)
  t.equal(results.length, items.length)
  for (const [i, r] of results.entries()) {
    const der = okDer(r)
    t.ok(Buffer.isBuffer(der), 'der is a Buffer')
    const cert = new X509Certificate(der)
    t.ok(cert.verify(ca.intermediatePublicKey), `item ${i} verifies under the intermediate`)
    t.equal(cert.subjectAltName?.split(', ')[0], `URI:spiffe://example.org/w/${i}`, `item ${i} in order`)
    const spec = {
      ...items[i]!,
      spki: parseCsr(items[i]!.csrDer).spki,
      serial: Buffer.from(items[i]!.serial!),
    }
    t.equal(
      tbsOf(der).toString('hex'),
      tbsOf(inline.issue(spec).der).toString('hex'),
      `item ${i}: same TBS as inline`,
    )
  }
  t.equal(pool.liveWorkers, 2)
  t.same(errors, [], 'workers started (no fallback to inline)')
})

t.test('bad items fail on their own without breaking the batch', async (t) => {
  const pool = new SigningPool({ size: 2, minChunk: 1 })
  t.teardown(() => pool.close())
  pool.setIssuer('int-1', ca.intermediateDer, ca.intermediate.privateKey)
  const items = [
    item(csrs.p256, 0),
    item(Buffer.from('garbage'), 1),
    item(tampered, 2),
    item(csrs.rsa1024, 3),
    item(csrs.p256, 4, { spiffeId: 'spiffe://other.org/x' }),
    item(csrs.p256, 5, { spiffeId: 'spiffe://example.org/a/../b' }),
    item(csrs.p256, 6, { dnsNames: ['bad name'] }),
    item(csrs.p256, 7, { notAfter: now + 1000 * 86_400_000 }),
    item(Buffer.alloc(0), 8),
    item(csrs.rsa, 9),
  ]
  const results = await pool.issue('int-1', items)
  t.same(
    results.map((r) => (r.ok ? 'ok' : r.code)),
    [
      'ok',
      'CSR_MALFORMED',
      'CSR_SIGNATURE_INVALID',
      'CSR_UNSUPPORTED_KEY',
      'SPIFFE_ID_FOREIGN_TRUST_DOMAIN',
      'SPIFFE_ID_INVALID',
      'DNS_NAME_INVALID',
      'TTL_INVALID',
      'CSR_MALFORMED',
      'ok',
    ],
  )
  for (const r of results) if (!r.ok) t.ok(r.message.length > 10, `${r.code} has a message`)
})

t.test('concurrent batches, issuer lifecycle and inline mode', async (t) => {
  const pool = new SigningPool({ size: 2 })
  t.teardown(() => pool.close())
  pool.setIssuer('int-1', ca.intermediateDer, ca.intermediate.privateKey)
  const batches = await Promise.all(
    Array.from({ length: 6 }, (_, b) =>
      pool.issue(
        'int-1',
        Array.from({ length: 20 }, (_, i) => item(csrs.p256, b * 100 + i)),
      ),
    ),
  )
  t.ok(
    batches.every((batch, b) =>
      batch.every(
        (r, i) =>
          r.ok &&
          new X509Certificate(r.der).subjectAltName?.startsWith(`URI:spiffe://example.org/w/${b * 100 + i}`),
      ),
    ),
  )

  const unknown = await pool.issue('nope', [item(csrs.p256, 1)])
  t.equal(unknown[0]!.ok ? 'ok' : unknown[0]!.code, 'INTERNAL', 'unknown issuer')
  pool.removeIssuer('int-1')
  const removed = await pool.issue('int-1', [item(csrs.p256, 1)])
  t.equal(removed[0]!.ok, false, 'removed issuer no longer signs')
  t.same(await pool.issue('int-1', []), [], 'empty batch')

  const other = await makeCa('ec-p256')
  t.throws(
    () => pool.setIssuer('bad', ca.intermediateDer, other.intermediate.privateKey),
    { code: 'ISSUER_INVALID' },
    'an unusable issuer is refused synchronously',
  )

  const inline = new SigningPool({ size: 0 })
  inline.setIssuer('int-1', ca.intermediateDer, ca.intermediate.privateKey)
  const r = await inline.issue('int-1', [item(csrs.p384, 3), item(tampered, 4)])
  t.ok(new X509Certificate(okDer(r[0])).verify(ca.intermediatePublicKey), 'inline issues')
  t.equal(r[1]!.ok ? 'ok' : r[1]!.code, 'CSR_SIGNATURE_INVALID')
  t.equal(inline.liveWorkers, 0)
  await inline.close()
})

t.test('close() terminates the workers and fails later calls', async (t) => {
  const pool = new SigningPool({ size: 2 })
  pool.setIssuer('int-1', ca.intermediateDer, ca.intermediate.privateKey)
  t.ok((await pool.issue('int-1', [item(csrs.p256, 1)]))[0]!.ok)
  t.equal(pool.liveWorkers, 2)
  const inFlight = t.rejects(
    pool.issue(
      'int-1',
      Array.from({ length: 50 }, (_, i) => item(csrs.rsa, i)),
    ),
    /closed/,
    'in-flight work is rejected',
  )
  await pool.close()
  t.equal(pool.liveWorkers, 0, 'no worker left running')
  await inFlight
  await t.rejects(pool.issue('int-1', [item(csrs.p256, 1)]), /closed/)
  t.throws(() => pool.setIssuer('x', ca.intermediateDer, ca.intermediate.privateKey), /closed/)
  await pool.close()
  t.pass('close is idempotent')
})
