// Fetches a foreign bundle from its bundle endpoint over HTTPS, with a deadline and a size limit.
//
// - https_web: the endpoint's certificate is verified as a web server's (chain to the system roots or
//   the federation's extra roots, host name), by node:tls.
// - https_spiffe: the endpoint must present an X509-SVID that chains to the bundle we already hold for
//   the foreign trust domain and carries exactly the expected SPIFFE ID. The TLS connection is made and
//   authenticated first, and only then is the request sent on it. This is what lets the foreign side
//   rotate its CA: its next bundle is fetched while the roots we hold still authenticate its endpoint.
//
// Redirects are not followed: an endpoint that moved is a configuration change for the operator.

import http from 'node:http'
import tls, { type DetailedPeerCertificate, type TLSSocket } from 'node:tls'
import { quote } from '../errors.ts'

export const MAX_BUNDLE_BYTES = 1024 * 1024

export interface FetchBundleRequest {
  url: URL
  /** https_web: the roots that verify the endpoint's web certificate (default: the system's). */
  webRoots?: string[]
  /**
   * https_spiffe: called with the endpoint's certificate chain (DER, leaf first) once the TLS handshake
   * is done and before the request is sent; throws when the endpoint is not the one expected.
   */
  authenticate?: (chainDer: Buffer[]) => void
  timeoutMs: number
  maxBytes: number
}

/** The endpoint could not be reached, was not trusted, or answered something other than a bundle. */
export class BundleFetchError extends Error {
  override readonly name = 'BundleFetchError'
}

export type BundleFetcher = (request: FetchBundleRequest) => Promise<string>

function peerChain(socket: TLSSocket): Buffer[] {
  const chain: Buffer[] = []
  let cert = socket.getPeerCertificate(true) as DetailedPeerCertificate | undefined
  while (cert?.raw && chain.length < 10) {
    if (chain.some((c) => c.equals(cert!.raw))) break
    chain.push(cert.raw)
    cert = cert.issuerCertificate
  }
  return chain
}

function connect(req: FetchBundleRequest, signal: AbortSignal): Promise<TLSSocket> {
  const { url } = req
  const host = url.hostname.replace(/^\[|\]$/g, '')
  const port = Number(url.port || 443)
  return new Promise((resolve, reject) => {
    const spiffe = req.authenticate !== undefined
    const options: tls.ConnectionOptions = {
      host,
      port,
      minVersion: 'TLSv1.2',
      ALPNProtocols: ['http/1.1'],
      // https_spiffe is authenticated below, against the foreign bundle, not the web PKI.
      rejectUnauthorized: !spiffe,
    }
    if (!/^[\d.]+$/.test(host) && !host.includes(':')) options.servername = host
    if (!spiffe && req.webRoots) options.ca = req.webRoots
    const socket = tls.connect(options)
    const fail = (err: Error) => {
      socket.destroy()
      reject(err)
    }
    signal.addEventListener('abort', () => fail(signal.reason as Error), { once: true })
    socket.once('error', (err: Error & { code?: string }) => {
      const what = err.code ? `${err.message} (${err.code})` : err.message
      fail(new BundleFetchError(`cannot connect to the bundle endpoint ${url.origin}: ${what}`))
    })
    socket.once('secureConnect', () => {
      if (spiffe) {
        try {
          req.authenticate!(peerChain(socket))
        } catch (err) {
          fail(
            new BundleFetchError(
              `the bundle endpoint ${url.origin} is not trusted: ${(err as Error).message}`,
            ),
          )
          return
        }
      }
      resolve(socket)
    })
  })
}

/** GET the bundle; resolves with the body text. Every failure is a BundleFetchError with the reason. */
export const fetchBundle: BundleFetcher = async (req) => {
  if (req.url.protocol !== 'https:')
    throw new BundleFetchError('bundle endpoints are fetched over https only')
  const controller = new AbortController()
  const timer = setTimeout(
    () =>
      controller.abort(
        new BundleFetchError(
          `the bundle endpoint ${req.url.origin} did not answer within ${req.timeoutMs} ms`,
        ),
      ),
    req.timeoutMs,
  )
  try {
    const socket = await connect(req, controller.signal)
    return await new Promise<string>((resolve, reject) => {
      const fail = (err: Error) => {
        request.destroy()
        socket.destroy()
        reject(err)
      }
      const request = http.request({
        method: 'GET',
        host: req.url.hostname,
        port: req.url.port || 443,
        path: `${req.url.pathname}${req.url.search}`,
        headers: { accept: 'application/json', host: req.url.host },
        createConnection: () => socket,
      })
      controller.signal.addEventListener('abort', () => fail(controller.signal.reason as Error), {
        once: true,
      })
      request.once('error', (err) =>
        fail(
          err instanceof BundleFetchError
            ? err
            : new BundleFetchError(`the bundle request failed: ${err.message}`),
        ),
      )
      request.once('response', (res) => {
        const status = res.statusCode ?? 0
        if (status !== 200) {
          const where =
            status >= 300 && status < 400
              ? ` (redirect to ${quote(res.headers.location ?? '')}; not followed)`
              : ''
          fail(new BundleFetchError(`the bundle endpoint answered HTTP ${status}${where}`))
          return
        }
        const declared = Number(res.headers['content-length'])
        if (Number.isFinite(declared) && declared > req.maxBytes) {
          fail(
            new BundleFetchError(`the bundle endpoint sent ${declared} bytes; the limit is ${req.maxBytes}`),
          )
          return
        }
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > req.maxBytes) {
            fail(new BundleFetchError(`the bundle endpoint sent more than ${req.maxBytes} bytes`))
            return
          }
          chunks.push(chunk)
        })
        res.once('error', (err) => fail(new BundleFetchError(`reading the bundle failed: ${err.message}`)))
        res.once('end', () => {
          socket.end()
          resolve(Buffer.concat(chunks).toString('utf8'))
        })
      })
      request.end()
    })
  } finally {
    clearTimeout(timer)
  }
}
