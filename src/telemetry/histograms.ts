import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { hrTime } from '@opentelemetry/core';
import { emptyResource } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, type CollectionResult, type HistogramMetricData, type MetricProducer } from '@opentelemetry/sdk-metrics';

/** Latency buckets for a gateway: 1 ms to 10 s. */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** One attribute set of a histogram: its bucket counts, sum, min and max. */
export class HistogramSeries {
  readonly counts: number[];
  sum = 0;
  count = 0;
  min = Infinity;
  max = -Infinity;

  constructor(
    private readonly boundaries: readonly number[],
    readonly attributes: Attributes,
  ) {
    this.counts = new Array<number>(boundaries.length + 1).fill(0);
  }

  record(value: number): void {
    if (!(value >= 0)) return; // durations only: NaN and negatives are not measurements
    const b = this.boundaries;
    // Boundaries are inclusive upper bounds (OTel explicit-bucket histogram); a dozen of them: linear scan.
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }
}

/**
 * A cumulative explicit-bucket histogram whose series are created once per attribute set and then
 * recorded into directly. The SDK's histograms look the series up by hashing the attribute object
 * on every record; on the proxy path (two records per request) that was most of the metrics cost.
 * Series handles come from caches keyed by the attribute values, so their number stays bounded
 * by the configured routes, upstreams, methods and status codes.
 */
export class FastHistogram {
  private readonly series: HistogramSeries[] = [];
  private readonly startTime: HrTime = hrTime();

  constructor(
    readonly name: string,
    readonly description: string,
    readonly unit: string,
    readonly boundaries: readonly number[] = DURATION_BUCKETS,
  ) {}

  /** A new series for `attributes`; the caller keeps it and records into it. */
  newSeries(attributes: Attributes): HistogramSeries {
    const series = new HistogramSeries(this.boundaries, attributes);
    this.series.push(series);
    return series;
  }

  collect(endTime: HrTime): HistogramMetricData | undefined {
    if (this.series.length === 0) return undefined;
    return {
      descriptor: { name: this.name, description: this.description, unit: this.unit, valueType: ValueType.DOUBLE },
      aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: this.series.map((s) => ({
        attributes: s.attributes,
        startTime: this.startTime,
        endTime,
        value: {
          buckets: { boundaries: [...this.boundaries], counts: [...s.counts] },
          sum: s.sum,
          count: s.count,
          ...(s.count > 0 ? { min: s.min, max: s.max } : {}),
        },
      })),
    };
  }
}

/**
 * Hands the gateway's histograms to the metric readers (the Prometheus exporter) alongside the
 * SDK's own instruments. One per process; histograms are registered by name, so a second gateway
 * in the same process shares them instead of exposing a name twice.
 */
export class GatewayMetricProducer implements MetricProducer {
  private readonly histograms = new Map<string, FastHistogram>();

  histogram(name: string, description: string, unit: string, boundaries: readonly number[] = DURATION_BUCKETS): FastHistogram {
    let h = this.histograms.get(name);
    if (h === undefined) this.histograms.set(name, (h = new FastHistogram(name, description, unit, boundaries)));
    return h;
  }

  async collect(): Promise<CollectionResult> {
    const now = hrTime();
    const metrics: HistogramMetricData[] = [];
    for (const h of this.histograms.values()) {
      const data = h.collect(now);
      if (data !== undefined) metrics.push(data);
    }
    // Readers merge only the scope metrics of extra producers into the SDK's resource metrics.
    return { resourceMetrics: { resource: emptyResource(), scopeMetrics: [{ scope: { name: 'tracing-gateway' }, metrics }] }, errors: [] };
  }
}

export const gatewayMetrics = new GatewayMetricProducer();
