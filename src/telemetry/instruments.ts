import { metrics, type Attributes, type Counter } from '@opentelemetry/api';
import { gatewayMetrics, type FastHistogram, type HistogramSeries } from './histograms.js';

/**
 * The gateway's own instruments. Names and attributes follow the stable HTTP semantic
 * conventions; the gateway-specific ones live under `gateway.*`. Every attribute value comes
 * from a bounded set (configured routes and upstreams, known methods, status codes), so the
 * number of series cannot grow with traffic.
 */
export class GatewayInstruments {
  /** Exposed as http_server_request_duration_seconds (the Prometheus name of the semconv metric). */
  private readonly serverDuration: FastHistogram;
  /** In-flight requests; read by an observable instrument at collection time, not recorded per request. */
  activeRequests = 0;
  private readonly clientDuration: FastHistogram;
  readonly upstreamErrors: Counter;
  readonly retries: Counter;
  /**
   * Histogram series per (route, method, status) and (upstream, method, status, outcome): nested
   * maps keyed by the parts, so a record neither allocates nor hashes.
   */
  private readonly serverSeriesCache = new Map<string | undefined, Map<string, Map<number, HistogramSeries>>>();
  private readonly clientSeriesCache = new Map<string, Map<string, Map<number, Map<string, HistogramSeries>>>>();

  constructor() {
    const meter = metrics.getMeter('tracing-gateway');
    this.serverDuration = gatewayMetrics.histogram('http.server.request.duration_seconds', 'Duration of HTTP server requests handled by the gateway.', 's');
    meter
      .createObservableUpDownCounter('http.server.active_requests', {
        unit: '{request}',
        description: 'Number of HTTP server requests in flight.',
      })
      .addCallback((result) => result.observe(this.activeRequests));
    this.clientDuration = gatewayMetrics.histogram(
      'http.client.request.duration_seconds',
      'Duration of requests from the gateway to its upstreams, by upstream and outcome.',
      's',
    );
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

  /** The http.server.request.duration series to record a finished request into. */
  serverSeries(method: string, route: string | undefined, status: number): HistogramSeries {
    const byMethod = getOrCreate(this.serverSeriesCache, route, newMap<string, Map<number, HistogramSeries>>);
    const byStatus = getOrCreate(byMethod, method, newMap<number, HistogramSeries>);
    let series = byStatus.get(status);
    if (series === undefined) {
      const attrs: Attributes = { 'http.request.method': method, 'http.response.status_code': status };
      // Unmatched paths have no route; they share the series without an http.route label.
      if (route !== undefined) attrs['http.route'] = route;
      byStatus.set(status, (series = this.serverDuration.newSeries(attrs)));
    }
    return series;
  }

  /** The http.client.request.duration series for one upstream try. */
  clientSeries(upstream: string, method: string, status: number, outcome: string): HistogramSeries {
    const byMethod = getOrCreate(this.clientSeriesCache, upstream, newMap<string, Map<number, Map<string, HistogramSeries>>>);
    const byStatus = getOrCreate(byMethod, method, newMap<number, Map<string, HistogramSeries>>);
    const byOutcome = getOrCreate(byStatus, status, newMap<string, HistogramSeries>);
    let series = byOutcome.get(outcome);
    if (series === undefined) {
      const attrs: Attributes = { 'gateway.upstream': upstream, 'http.request.method': method, outcome };
      if (status > 0) attrs['http.response.status_code'] = status;
      byOutcome.set(outcome, (series = this.clientDuration.newSeries(attrs)));
    }
    return series;
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
