import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { describe, expect, it } from 'vitest';
import { mergeExpositions, mergeRuleFor } from '../../src/admin/metrics-merge.js';
import { parseExposition } from '../helpers/exposition.js';

/** One thread's exposition, from a real meter provider and the real Prometheus serializer (no views: no unit suffixes). */
async function exposition(record: (provider: MeterProvider) => void): Promise<string> {
  const reader = new PrometheusExporter({ preventServerStart: true, withoutScopeInfo: true });
  const provider = new MeterProvider({ readers: [reader] });
  record(provider);
  const { resourceMetrics } = await reader.collect();
  await provider.shutdown();
  return new PrometheusSerializer(undefined, false, undefined, true, true).serialize(resourceMetrics);
}

function thread(requests: number[], cpu: number, loopUtilization: number, up: number) {
  return exposition((provider) => {
    const meter = provider.getMeter('t');
    const duration = meter.createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: [0.1, 1] } });
    for (const seconds of requests) duration.record(seconds, { 'http.route': '/api/*' });
    meter.createCounter('gateway.upstream.errors').add(requests.length, { 'gateway.upstream': 'api' });
    meter.createObservableCounter('process.cpu.time', { unit: 's' }).addCallback((r) => r.observe(cpu));
    meter.createObservableGauge('nodejs.eventloop.utilization', { unit: '1' }).addCallback((r) => r.observe(loopUtilization));
    meter.createObservableGauge('gateway.upstream.up').addCallback((r) => r.observe(up, { 'gateway.upstream': 'api' }));
  });
}

describe('mergeExpositions', () => {
  it('adds up histograms and counters, keeps process-wide series once and runtime series per thread', async () => {
    const one = await thread([0.05, 0.5], 3, 0.25, 1);
    const two = await thread([0.05, 2, 3], 3, 0.75, 0);
    const merged = parseExposition(mergeExpositions([one, two]));

    const histogram = merged.get('http_server_request_duration')!;
    expect(histogram.type).toBe('histogram');
    const bucket = (le: string) => histogram.samples.find((s) => s.name.endsWith('_bucket') && s.labels.le === le)!.value;
    expect([bucket('0.1'), bucket('1'), bucket('+Inf')]).toEqual([2, 3, 5]);
    expect(histogram.samples.find((s) => s.name.endsWith('_count'))!.value).toBe(5);
    expect(histogram.samples.find((s) => s.name.endsWith('_sum'))!.value).toBeCloseTo(5.6, 10);
    expect(merged.get('gateway_upstream_errors_total')!.samples[0]!.value).toBe(5);
    // The same process read twice is still one process.
    expect(merged.get('process_cpu_time_total')!.samples.map((s) => s.value)).toEqual([3]);
    expect(merged.get('nodejs_eventloop_utilization')!.samples.map((s) => [s.labels.worker, s.value])).toEqual([
      ['1', 0.25],
      ['2', 0.75],
    ]);
    // Up only when every thread found it up.
    expect(merged.get('gateway_upstream_up')!.samples.map((s) => s.value)).toEqual([0]);
  });

  it('is the identity for one thread (apart from the per-thread label)', async () => {
    const one = await thread([0.05], 1, 0.5, 1);
    expect(mergeExpositions([one])).toBe(one.replace('\nnodejs_eventloop_utilization 0.5', '\nnodejs_eventloop_utilization{worker="1"} 0.5'));
  });

  it('keeps a family only one thread has, with its own header, and labels series that had none', () => {
    const a = '# HELP a_total A.\n# TYPE a_total counter\na_total 1\n';
    const b = '# HELP b Only here.\n# TYPE b gauge\nb{x="1"} 2\n# HELP a_total Other help.\n# TYPE a_total counter\na_total 4\n';
    const merged = mergeExpositions([a, b]);
    expect(merged).toBe('# HELP a_total A.\n# TYPE a_total counter\na_total 5\n# HELP b Only here.\n# TYPE b gauge\nb{x="1"} 2\n');
    const runtime = mergeExpositions(['# TYPE v8js_x gauge\nv8js_x 1\n', '# TYPE v8js_x gauge\nv8js_x{k="v"} 2\n']);
    expect(runtime).toBe('# TYPE v8js_x gauge\nv8js_x{worker="1"} 1\nv8js_x{worker="2",k="v"} 2\n');
  });

  it('writes infinities and NaN as the exposition format spells them', () => {
    const text = '# TYPE g gauge\ng{a="1"} +Inf\ng{a="2"} -Inf\ng{a="3"} NaN\n';
    expect(mergeExpositions([text, text])).toBe(text);
  });

  it('names a rule for every family the gateway exports', () => {
    expect(mergeRuleFor('target_info')).toBe('first');
    expect(mergeRuleFor('process_memory_usage_bytes')).toBe('first');
    expect(mergeRuleFor('v8js_memory_heap_used_bytes')).toBe('per-worker');
    expect(mergeRuleFor('gateway_upstream_circuit_state')).toBe('per-worker');
    expect(mergeRuleFor('gateway_upstream_up')).toBe('min');
    expect(mergeRuleFor('http_server_active_requests')).toBe('sum');
    expect(mergeRuleFor('gateway_trace_store_spans')).toBe('sum');
  });
});
