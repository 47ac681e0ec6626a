import { useEffect, useState } from 'react'
import type { ApiError } from '../api.ts'
import { request, tdPath } from '../api.ts'
import { ErrorAlert, Loading } from '../components/Alert.tsx'
import { CopyButton } from '../components/CopyButton.tsx'
import { useApi } from '../hooks.ts'

interface SpiffeBundle {
  keys: Array<{ use: string; kid?: string; kty: string; crv?: string }>
  spiffe_sequence?: number
  spiffe_refresh_hint?: number
}

export function BundlePage({ td }: { td: string }) {
  const spiffe = useApi<SpiffeBundle>(tdPath(td, '/bundle?format=spiffe'))
  const [pem, setPem] = useState<string>()
  const [pemError, setPemError] = useState<ApiError>()
  useEffect(() => {
    request<string>('GET', tdPath(td, '/bundle?format=pem'), undefined, { raw: true }).then(
      setPem,
      setPemError,
    )
  }, [td])
  const json = spiffe.data ? JSON.stringify(spiffe.data, null, 2) : ''
  return (
    <section aria-labelledby="bundle-heading">
      <h1 id="bundle-heading">Bundle of {td}</h1>
      <p>
        The trust bundle: the root CAs that X509-SVIDs of {td} chain to, and the keys JWT-SVIDs are signed
        with.
      </p>
      <ErrorAlert error={spiffe.error ?? pemError} />
      {spiffe.data && (
        <p>
          Sequence {spiffe.data.spiffe_sequence ?? '—'};{' '}
          {spiffe.data.keys.filter((k) => k.use === 'x509-svid').length} X.509 root(s),{' '}
          {spiffe.data.keys.filter((k) => k.use === 'jwt-svid').length} JWT key(s); refresh hint{' '}
          {spiffe.data.spiffe_refresh_hint ?? '—'} s.
        </p>
      )}
      <section className="panel" aria-labelledby="pem-heading">
        <h2 id="pem-heading">PEM</h2>
        {pem === undefined && !pemError ? (
          <Loading what="the bundle" />
        ) : (
          <>
            <textarea
              aria-label="Bundle in PEM format"
              className="mono"
              readOnly
              rows={10}
              value={pem ?? ''}
            />
            <div className="actions left">
              <a className="button" href={tdPath(td, '/bundle?format=pem')} download={`${td}.bundle.pem`}>
                Download PEM
              </a>
              <CopyButton text={pem ?? ''} label="Copy PEM" />
            </div>
          </>
        )}
      </section>
      <section className="panel" aria-labelledby="spiffe-heading">
        <h2 id="spiffe-heading">SPIFFE bundle (JWK Set)</h2>
        {!spiffe.data ? (
          <Loading what="the bundle" />
        ) : (
          <>
            <textarea aria-label="Bundle in SPIFFE format" className="mono" readOnly rows={12} value={json} />
            <div className="actions left">
              <a className="button" href={tdPath(td, '/bundle?format=spiffe')} download={`${td}.bundle.json`}>
                Download SPIFFE bundle
              </a>
              <CopyButton text={json} label="Copy SPIFFE bundle" />
            </div>
          </>
        )}
      </section>
    </section>
  )
}
