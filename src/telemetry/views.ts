import { AggregationType, type ViewOptions } from '@opentelemetry/sdk-metrics';
import { DURATION_BUCKETS } from './histograms.js';

/**
 * The JS Prometheus exporter does not append unit suffixes, so `http.server.request.duration`
 * would appear as `http_server_request_duration`. These views give the Prometheus names that
 * the OTel→Prometheus compatibility rules (and the collector) produce: `_seconds`, `_bytes`.
 * The gateway's own request-duration histograms already carry these names (histograms.ts); the
 * views give the demo services' SDK histograms the same names and buckets.
 */
const UNIT_SUFFIXED: Array<[instrument: string, exposedAs: string]> = [
  ['http.server.request.duration', 'http.server.request.duration_seconds'],
  ['http.client.request.duration', 'http.client.request.duration_seconds'],
  ['process.cpu.time', 'process.cpu.time_seconds'],
  ['process.memory.usage', 'process.memory.usage_bytes'],
  ['v8js.gc.duration', 'v8js.gc.duration_seconds'],
  ['v8js.memory.heap.used', 'v8js.memory.heap.used_bytes'],
  ['v8js.memory.heap.limit', 'v8js.memory.heap.limit_bytes'],
  ['v8js.memory.heap.space.available_size', 'v8js.memory.heap.space.available_size_bytes'],
  ['v8js.memory.heap.space.physical_size', 'v8js.memory.heap.space.physical_size_bytes'],
  ['nodejs.eventloop.delay.min', 'nodejs.eventloop.delay.min_seconds'],
  ['nodejs.eventloop.delay.max', 'nodejs.eventloop.delay.max_seconds'],
  ['nodejs.eventloop.delay.mean', 'nodejs.eventloop.delay.mean_seconds'],
  ['nodejs.eventloop.delay.stddev', 'nodejs.eventloop.delay.stddev_seconds'],
  ['nodejs.eventloop.delay.p50', 'nodejs.eventloop.delay.p50_seconds'],
  ['nodejs.eventloop.delay.p90', 'nodejs.eventloop.delay.p90_seconds'],
  ['nodejs.eventloop.delay.p99', 'nodejs.eventloop.delay.p99_seconds'],
  ['nodejs.eventloop.time', 'nodejs.eventloop.time_seconds'],
  ['nodejs.eventloop.utilization', 'nodejs.eventloop.utilization_ratio'],
];

const HISTOGRAMS_IN_SECONDS = new Set(['http.server.request.duration', 'http.client.request.duration']);

export const prometheusViews: ViewOptions[] = UNIT_SUFFIXED.map(([instrumentName, name]) =>
  HISTOGRAMS_IN_SECONDS.has(instrumentName)
    ? {
        instrumentName,
        name,
        aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: DURATION_BUCKETS } },
      }
    : { instrumentName, name },
);
