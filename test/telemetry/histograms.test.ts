import fc from 'fast-check';
import { AggregationType, DataPointType, MeterProvider, MetricReader, type HistogramMetricData } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { DURATION_BUCKETS, GatewayMetricProducer } from '../../src/telemetry/histograms.js';

/** A reader that only collects on demand: the SDK's own aggregation, as the reference. */
class PullReader extends MetricReader {
  protected async onForceFlush(): Promise<void> {}
  protected async onShutdown(): Promise<void> {}
}

async function sdkHistogram(values: number[]): Promise<HistogramMetricData> {
  const reader = new PullReader();
  const provider = new MeterProvider({
    readers: [reader],
    views: [{ instrumentName: 'h', aggregation: { type: AggregationType.EXPLICIT_BUCKET_HISTOGRAM, options: { boundaries: DURATION_BUCKETS } } }],
  });
  const h = provider.getMeter('m').createHistogram('h', { unit: 's' });
  for (const v of values) h.record(v, { route: 'a' });
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return resourceMetrics.scopeMetrics[0]!.metrics[0] as HistogramMetricData;
}

const durations = fc.array(
  fc.oneof(
    fc.double({ min: 0, max: 20, noNaN: true }),
    fc.constantFrom(...DURATION_BUCKETS), // exactly on a boundary: the bucket whose upper bound it is
    fc.constant(0),
  ),
  { maxLength: 200 },
);

describe('gateway histograms', () => {
  it('bucket, sum, count, min and max agree with the SDK explicit-bucket histogram for any values', async () => {
    await fc.assert(
      fc.asyncProperty(durations, async (values) => {
        const producer = new GatewayMetricProducer();
        const series = producer.histogram('h', 'test', 's').newSeries({ route: 'a' });
        for (const v of values) series.record(v);
        const ours = (await producer.collect()).resourceMetrics.scopeMetrics[0]!.metrics;
        if (values.length === 0) {
          // A series that exists but saw nothing is exposed with zero counts (the SDK has no point yet).
          expect((ours[0] as HistogramMetricData).dataPoints[0]!.value.count).toBe(0);
          return;
        }
        const reference = await sdkHistogram(values);
        const mine = ours[0] as HistogramMetricData;
        expect(mine.dataPointType).toBe(DataPointType.HISTOGRAM);
        const a = mine.dataPoints[0]!.value;
        const b = reference.dataPoints[0]!.value;
        expect(a.buckets).toEqual(b.buckets);
        expect(a.count).toBe(b.count);
        expect(a.sum).toBeCloseTo(b.sum!, 9);
        expect(a.min).toBe(b.min);
        expect(a.max).toBe(b.max);
        expect(mine.dataPoints[0]!.attributes).toEqual({ route: 'a' });
      }),
      { numRuns: 100 },
    );
  });

  it('ignores what is not a duration (NaN, negative), as the SDK histogram does', () => {
    const producer = new GatewayMetricProducer();
    const series = producer.histogram('h', 'test', 's').newSeries({});
    series.record(Number.NaN);
    series.record(-1);
    series.record(0.002);
    expect(series.count).toBe(1);
    expect(series.counts.reduce((x, y) => x + y, 0)).toBe(1);
  });

  it('registers each histogram name once, so two gateways in a process share it', async () => {
    const producer = new GatewayMetricProducer();
    const a = producer.histogram('http.server.request.duration_seconds', 'd', 's');
    const b = producer.histogram('http.server.request.duration_seconds', 'd', 's');
    expect(b).toBe(a);
    a.newSeries({ k: '1' }).record(0.01);
    b.newSeries({ k: '2' }).record(0.02);
    const metrics = (await producer.collect()).resourceMetrics.scopeMetrics[0]!.metrics;
    expect(metrics).toHaveLength(1);
    expect(metrics[0]!.dataPoints).toHaveLength(2);
  });
});
