// Prometheus metrics, one registry per app instance (tests build several apps in one process).

import { Counter, collectDefaultMetrics, Histogram, Registry } from 'prom-client'

export class Metrics {
  readonly registry = new Registry()
  readonly httpRequests = new Counter({
    name: 'sigil_http_requests_total',
    help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const,
    registers: [this.registry],
  })
  readonly httpDuration = new Histogram({
    name: 'sigil_http_request_duration_seconds',
    help: 'HTTP request duration',
    labelNames: ['route', 'method'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5],
    registers: [this.registry],
  })
  readonly svidsIssued = new Counter({
    name: 'sigil_svids_issued_total',
    help: 'SVIDs issued by kind',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  })

  constructor(opts: { processMetrics?: boolean } = {}) {
    if (opts.processMetrics) collectDefaultMetrics({ register: this.registry, prefix: 'sigil_' })
  }
}
