// The kubelet's pod list (GET /pods on the kubelet's port), the source of truth for what runs on this
// node. Only the fields workload attestation reads are typed. The client is a seam: the k8s attestor
// takes any KubeletClient, and tests serve a recorded pod list over a local HTTP server.

import { readFileSync } from 'node:fs'
import http from 'node:http'
import https from 'node:https'

export interface ContainerStatus {
  name: string
  image?: string
  imageID?: string
  /** <runtime>://<id>, e.g. containerd://9bca8d... */
  containerID?: string
}

export interface Pod {
  metadata: { uid: string; name: string; namespace: string; labels?: Record<string, string> }
  spec?: {
    serviceAccountName?: string
    nodeName?: string
    containers?: Array<{ name: string; image?: string }>
    initContainers?: Array<{ name: string; image?: string }>
    ephemeralContainers?: Array<{ name: string; image?: string }>
  }
  status?: {
    containerStatuses?: ContainerStatus[]
    initContainerStatuses?: ContainerStatus[]
    ephemeralContainerStatuses?: ContainerStatus[]
  }
}

export interface PodList {
  items: Pod[]
}

export interface KubeletClient {
  podList(): Promise<PodList>
}

export const DEFAULT_KUBELET_URL = 'https://127.0.0.1:10250/pods'
export const DEFAULT_KUBELET_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token'

export interface HttpKubeletClientOptions {
  /** The pod list URL, e.g. https://127.0.0.1:10250/pods (or http://127.0.0.1:10255/pods, read-only). */
  url: string
  /** A bearer token file, re-read on every request (projected tokens rotate). */
  tokenFile?: string
  /** PEM CA bundle for the kubelet's serving certificate. */
  ca?: string
  /** Kubelet serving certificates are often self-signed; trusting any takes this explicit option. */
  insecureSkipVerify?: boolean
  timeoutMs?: number
  /** A larger pod list is refused. Default 64 MiB. */
  maxBytes?: number
}

export class KubeletError extends Error {
  override name = 'KubeletError'
}

export class HttpKubeletClient implements KubeletClient {
  readonly #opts: HttpKubeletClientOptions
  readonly #url: URL
  readonly #agent: http.Agent

  constructor(opts: HttpKubeletClientOptions) {
    this.#opts = opts
    this.#url = new URL(opts.url)
    if (this.#url.protocol === 'https:') {
      const agentOpts: https.AgentOptions = { keepAlive: true, minVersion: 'TLSv1.2' }
      if (opts.ca) agentOpts.ca = opts.ca
      if (opts.insecureSkipVerify) agentOpts.rejectUnauthorized = false
      this.#agent = new https.Agent(agentOpts)
    } else if (this.#url.protocol === 'http:') {
      this.#agent = new http.Agent({ keepAlive: true })
    } else {
      throw new TypeError(`kubelet URL must be http(s)://, got ${JSON.stringify(opts.url)}`)
    }
  }

  close(): void {
    this.#agent.destroy()
  }

  podList(): Promise<PodList> {
    const headers: Record<string, string> = { accept: 'application/json' }
    if (this.#opts.tokenFile) {
      headers.authorization = `Bearer ${readFileSync(this.#opts.tokenFile, 'utf8').trim()}`
    }
    const maxBytes = this.#opts.maxBytes ?? 64 * 1024 * 1024
    const get = this.#url.protocol === 'https:' ? https.get : http.get
    return new Promise((resolve, reject) => {
      const req = get(this.#url, { agent: this.#agent, headers }, (res) => {
        const chunks: Buffer[] = []
        let size = 0
        res.on('data', (chunk: Buffer) => {
          size += chunk.length
          if (size > maxBytes) {
            req.destroy(new KubeletError(`kubelet pod list exceeds ${maxBytes} bytes`))
            return
          }
          chunks.push(chunk)
        })
        res.on('error', reject)
        res.on('end', () => {
          if (res.statusCode !== 200) {
            reject(new KubeletError(`kubelet ${this.#url.href} answered ${res.statusCode}`))
            return
          }
          try {
            const list = JSON.parse(Buffer.concat(chunks).toString('utf8')) as PodList
            if (!list || !Array.isArray(list.items)) throw new Error('no items')
            resolve(list)
          } catch (err) {
            reject(new KubeletError(`kubelet ${this.#url.href} sent no pod list: ${(err as Error).message}`))
          }
        })
      })
      req.setTimeout(this.#opts.timeoutMs ?? 10_000, () =>
        req.destroy(new KubeletError(`kubelet ${this.#url.href} did not answer in time`)),
      )
      req.on('error', (err) =>
        reject(
          err instanceof KubeletError ? err : new KubeletError(`kubelet ${this.#url.href}: ${err.message}`),
        ),
      )
    })
  }
}
