import { metrics, type Attributes, type Histogram, type Counter, type UpDownCounter } from '@opentelemetry/api';

/**
 * The gateway's own instruments. Names and attributes follow the stable HTTP semantic
 * conventions; the gateway-specific ones live under `gateway.*`. Every attribute value comes
 * from a bounded set (configured routes and upstreams, known methods, status codes), so the
 * number of series cannot grow with traffic.
 */
export class GatewayInstruments {
  readonly serverDuration: Histogram;
  readonly activeRequests: UpDownCounter;
  readonly clientDuration: Histogram;
  readonly upstreamErrors: Counter;
  readonly retries: Counter;
  /** Attribute objects are reused per (route, method, status) to spare an allocation per record. */
  private readonly serverAttrCache = new Map<string, Attributes>();
  private readonly clientAttrCache = new Map<string, Attributes>();

  constructor() {
    const meter = metrics.getMeter('tracing-gateway');
    this.serverDuration = meter.createHistogram('http.server.request.duration', {
      unit: 's',
      description: 'Duration of HTTP server requests handled by the gateway.',
    });
    this.activeRequests = meter.createUpDownCounter('http.server.active_requests', {
      unit: '{request}',
      description: 'Number of HTTP server requests in flight.',
    });
    this.clientDuration = meter.createHistogram('http.client.request.duration', {
      unit: 's',
      description: 'Duration of requests from the gateway to its upstreams, by upstream and outcome.',
    });
    this.upstreamErrors = meter.createCounter('gateway.upstream.errors', {
      unit: '{error}',
      description: 'Failed upstream requests by upstream and kind (connect, timeout, reset, 5xx, circuit_open).',
    });
    this.retries = meter.createCounter('gateway.upstream.retries', {
      unit: '{retry}',
      description: 'Upstream requests tried again, by upstream and the reason (connect, reset, or the status code).',
    });

    const rssAttrs = {};
    const userAttrs = { 'cpu.mode': 'user' };
    const systemAttrs = { 'cpu.mode': 'system' };
    meter
      .createObservableCounter('process.cpu.time', { unit: 's', description: 'CPU time used by the gateway process.' })
      .addCallback((result) => {
        const usage = process.cpuUsage();
        result.observe(usage.user / 1e6, userAttrs);
        result.observe(usage.system / 1e6, systemAttrs);
      });
    meter
      .createObservableGauge('process.memory.usage', { unit: 'By', description: 'Resident set size of the gateway process.' })
      .addCallback((result) => result.observe(process.memoryUsage.rss(), rssAttrs));
  }

  serverAttributes(method: string, route: string | undefined, status: number): Attributes {
    const key = `${method} ${route ?? ''} ${status}`;
    let attrs = this.serverAttrCache.get(key);
    if (attrs === undefined) {
      attrs = { 'http.request.method': method, 'http.response.status_code': status };
      // Unmatched paths have no route; they share the series without an http.route label.
      if (route !== undefined) attrs['http.route'] = route;
      this.serverAttrCache.set(key, attrs);
    }
    return attrs;
  }

  clientAttributes(upstream: string, method: string, status: number, outcome: string): Attributes {
    const key = `${upstream} ${method} ${status} ${outcome}`;
    let attrs = this.clientAttrCache.get(key);
    if (attrs === undefined) {
      attrs = { 'gateway.upstream': upstream, 'http.request.method': method, outcome };
      if (status > 0) attrs['http.response.status_code'] = status;
      this.clientAttrCache.set(key, attrs);
    }
    return attrs;
  }
}
