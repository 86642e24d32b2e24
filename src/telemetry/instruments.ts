import { metrics, type Attributes, type Histogram, type Counter } from '@opentelemetry/api';

/**
 * The gateway's own instruments. Names and attributes follow the stable HTTP semantic
 * conventions; the gateway-specific ones live under `gateway.*`. Every attribute value comes
 * from a bounded set (configured routes and upstreams, known methods, status codes), so the
 * number of series cannot grow with traffic.
 */
export class GatewayInstruments {
  readonly serverDuration: Histogram;
  /** In-flight requests; read by an observable instrument at collection time, not recorded per request. */
  activeRequests = 0;
  readonly clientDuration: Histogram;
  readonly upstreamErrors: Counter;
  readonly retries: Counter;
  /**
   * Attribute objects are reused per (route, method, status) and (upstream, method, status,
   * outcome): nested maps keyed by the parts, so a record allocates nothing.
   */
  private readonly serverAttrCache = new Map<string | undefined, Map<string, Map<number, Attributes>>>();
  private readonly clientAttrCache = new Map<string, Map<string, Map<number, Map<string, Attributes>>>>();

  constructor() {
    const meter = metrics.getMeter('tracing-gateway');
    this.serverDuration = meter.createHistogram('http.server.request.duration', {
      unit: 's',
      description: 'Duration of HTTP server requests handled by the gateway.',
    });
    meter
      .createObservableUpDownCounter('http.server.active_requests', {
        unit: '{request}',
        description: 'Number of HTTP server requests in flight.',
      })
      .addCallback((result) => result.observe(this.activeRequests));
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
    const byMethod = getOrCreate(this.serverAttrCache, route, newMap<string, Map<number, Attributes>>);
    const byStatus = getOrCreate(byMethod, method, newMap<number, Attributes>);
    let attrs = byStatus.get(status);
    if (attrs === undefined) {
      attrs = { 'http.request.method': method, 'http.response.status_code': status };
      // Unmatched paths have no route; they share the series without an http.route label.
      if (route !== undefined) attrs['http.route'] = route;
      byStatus.set(status, attrs);
    }
    return attrs;
  }

  clientAttributes(upstream: string, method: string, status: number, outcome: string): Attributes {
    const byMethod = getOrCreate(this.clientAttrCache, upstream, newMap<string, Map<number, Map<string, Attributes>>>);
    const byStatus = getOrCreate(byMethod, method, newMap<number, Map<string, Attributes>>);
    const byOutcome = getOrCreate(byStatus, status, newMap<string, Attributes>);
    let attrs = byOutcome.get(outcome);
    if (attrs === undefined) {
      attrs = { 'gateway.upstream': upstream, 'http.request.method': method, outcome };
      if (status > 0) attrs['http.response.status_code'] = status;
      byOutcome.set(outcome, attrs);
    }
    return attrs;
  }
}

function newMap<K, V>(): Map<K, V> {
  return new Map<K, V>();
}

function getOrCreate<K, V>(map: Map<K, V>, key: K, create: () => V): V {
  let value = map.get(key);
  if (value === undefined) map.set(key, (value = create()));
  return value;
}
