// The SDK components built from the standard OTEL_* variables (src/telemetry/env.ts): unit checks
// of each variable, then the gateway process itself with them set, exporting to a real receiver.
import { hostname } from 'node:os';
import { ROOT_CONTEXT, SpanKind, TraceFlags, trace } from '@opentelemetry/api';
import { SamplingDecision } from '@opentelemetry/sdk-trace';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { resourceFromEnv, samplerFromEnv, spanLimitsFromEnv } from '../../src/telemetry/env.js';
import { configFor, startGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const VARS = [
  'OTEL_TRACES_SAMPLER',
  'OTEL_TRACES_SAMPLER_ARG',
  'OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT',
  'OTEL_ATTRIBUTE_COUNT_LIMIT',
  'OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT',
  'OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT',
  'OTEL_SPAN_EVENT_COUNT_LIMIT',
  'OTEL_SPAN_LINK_COUNT_LIMIT',
  'OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT',
  'OTEL_LINK_ATTRIBUTE_COUNT_LIMIT',
  'OTEL_NODE_RESOURCE_DETECTORS',
  'OTEL_RESOURCE_ATTRIBUTES',
  'OTEL_SERVICE_NAME',
];
const saved = Object.fromEntries(VARS.map((v) => [v, process.env[v]]));
afterEach(() => {
  for (const v of VARS) {
    if (saved[v] === undefined) delete process.env[v];
    else process.env[v] = saved[v];
  }
});

function setEnv(values: Record<string, string>): string[] {
  for (const v of VARS) delete process.env[v];
  Object.assign(process.env, values);
  return [];
}

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const remoteParent = (sampled: boolean) =>
  trace.setSpanContext(ROOT_CONTEXT, { traceId: TRACE_ID, spanId: '00f067aa0ba902b7', traceFlags: sampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true });
/** Whether the sampler records a root span (trace id given) and a child of an unsampled remote parent. */
function decide(traceId: string): [root: boolean, childOfUnsampled: boolean] {
  const warnings: string[] = [];
  const sampler = samplerFromEnv((w) => warnings.push(w));
  const root = sampler.shouldSample(ROOT_CONTEXT, traceId, 'GET', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED;
  const child = sampler.shouldSample(remoteParent(false), TRACE_ID, 'GET', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED;
  return [root, child];
}

describe('OTEL_TRACES_SAMPLER', () => {
  it('builds each standard sampler; parentbased_* follow the caller, the others ignore it', () => {
    const cases: Array<[string, string | undefined, [boolean, boolean]]> = [
      ['always_on', undefined, [true, true]],
      ['always_off', undefined, [false, false]],
      ['parentbased_always_on', undefined, [true, false]],
      ['parentbased_always_off', undefined, [false, false]],
      ['traceidratio', '1', [true, true]],
      ['traceidratio', '0', [false, false]],
      ['parentbased_traceidratio', '1', [true, false]],
      ['PARENTBASED_ALWAYS_OFF', undefined, [false, false]],
    ];
    for (const [name, arg, expected] of cases) {
      setEnv(arg === undefined ? { OTEL_TRACES_SAMPLER: name } : { OTEL_TRACES_SAMPLER: name, OTEL_TRACES_SAMPLER_ARG: arg });
      expect(decide(TRACE_ID), `${name} ${arg ?? ''}`).toEqual(expected);
    }
  });

  it('samples by trace id at the OTEL_TRACES_SAMPLER_ARG ratio', () => {
    setEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.25' });
    let sampled = 0;
    for (let i = 0; i < 4000; i++) if (decide((i * 2654435761).toString(16).padStart(32, '0').slice(-32))[0]) sampled++;
    expect(sampled / 4000).toBeGreaterThan(0.15);
    expect(sampled / 4000).toBeLessThan(0.35);
  });

  it('defaults to parentbased_always_on, and warns about unknown names and bad ratios instead of failing', () => {
    setEnv({});
    expect(decide(TRACE_ID)).toEqual([true, false]);
    const warnings: string[] = [];
    setEnv({ OTEL_TRACES_SAMPLER: 'jaeger_remote' });
    samplerFromEnv((w) => warnings.push(w));
    setEnv({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '7' });
    const ratio7 = samplerFromEnv((w) => warnings.push(w));
    setEnv({ OTEL_TRACES_SAMPLER: 'traceidratio' });
    samplerFromEnv((w) => warnings.push(w));
    expect(warnings).toEqual([
      expect.stringContaining('OTEL_TRACES_SAMPLER: "jaeger_remote" is not supported'),
      'OTEL_TRACES_SAMPLER_ARG: 7 is outside [0, 1]; sampling ratio 1',
      'OTEL_TRACES_SAMPLER_ARG is not set: sampling ratio 1',
    ]);
    expect(ratio7.toString()).toBe('TraceIdRatioBased{1}');
  });
});

describe('span limits', () => {
  it('cuts attribute values at 2048 characters unless a length limit is set; other limits stay the SDK defaults', () => {
    setEnv({});
    expect(spanLimitsFromEnv()).toEqual({ attributeValueLengthLimit: 2048 });
    setEnv({ OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '100', OTEL_ATTRIBUTE_COUNT_LIMIT: '20' });
    expect(spanLimitsFromEnv()).toEqual({ attributeValueLengthLimit: 100, attributeCountLimit: 20 });
  });

  it('prefers the OTEL_SPAN_* variables over the general OTEL_ATTRIBUTE_* ones', () => {
    setEnv({
      OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: '100',
      OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: '50',
      OTEL_ATTRIBUTE_COUNT_LIMIT: '20',
      OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '10',
      OTEL_SPAN_EVENT_COUNT_LIMIT: '3',
      OTEL_SPAN_LINK_COUNT_LIMIT: '2',
      OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT: '5',
      OTEL_LINK_ATTRIBUTE_COUNT_LIMIT: '4',
    });
    expect(spanLimitsFromEnv()).toEqual({
      attributeValueLengthLimit: 50,
      attributeCountLimit: 10,
      eventCountLimit: 3,
      linkCountLimit: 2,
      attributePerEventCountLimit: 5,
      attributePerLinkCountLimit: 4,
    });
  });
});

describe('resource', () => {
  const detect = (values: Record<string, string>) => {
    const warnings = setEnv(values);
    const attributes = resourceFromEnv((w) => warnings.push(w)).attributes;
    return { attributes, warnings };
  };

  it('has the SDK attributes and what the default detectors (service, host, process) find', () => {
    const { attributes, warnings } = detect({});
    expect(attributes).toMatchObject({ 'telemetry.sdk.language': 'nodejs', 'telemetry.sdk.name': 'opentelemetry', 'host.name': hostname(), 'process.pid': process.pid });
    expect(attributes['service.instance.id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(String(attributes['service.name'])).toMatch(/^unknown_service/);
    expect(warnings).toEqual([]);
  });

  it('lets OTEL_RESOURCE_ATTRIBUTES override what was detected, and OTEL_SERVICE_NAME override both', () => {
    const { attributes } = detect({
      OTEL_RESOURCE_ATTRIBUTES: 'host.name=edge-1,deployment.environment.name=staging,service.name=from-attributes',
      OTEL_SERVICE_NAME: 'edge-gateway',
    });
    expect(attributes).toMatchObject({ 'host.name': 'edge-1', 'deployment.environment.name': 'staging', 'service.name': 'edge-gateway' });
    expect(detect({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attributes' }).attributes['service.name']).toBe('from-attributes');
  });

  it('runs only the detectors OTEL_NODE_RESOURCE_DETECTORS names, and warns about unknown ones', () => {
    const hostOnly = detect({ OTEL_NODE_RESOURCE_DETECTORS: 'host,nonsense' });
    expect(hostOnly.attributes['host.name']).toBe(hostname());
    expect(hostOnly.attributes['process.pid']).toBeUndefined();
    expect(hostOnly.attributes['service.instance.id']).toBeUndefined();
    expect(hostOnly.warnings).toEqual([expect.stringContaining('OTEL_NODE_RESOURCE_DETECTORS: "nonsense" is not supported')]);
    const none = detect({ OTEL_NODE_RESOURCE_DETECTORS: 'none', OTEL_SERVICE_NAME: 'svc' });
    expect(none.attributes['host.name']).toBeUndefined();
    expect(none.attributes['process.pid']).toBeUndefined();
    expect(none.attributes['service.name']).toBe('svc');
    expect(detect({ OTEL_NODE_RESOURCE_DETECTORS: 'all' }).attributes).toHaveProperty('process.pid', process.pid);
  });
});

describe('the gateway process with OTEL_* set', () => {
  let receiver: OtlpReceiver;
  let upstream: TestUpstream;
  beforeAll(async () => {
    receiver = await startOtlpReceiver();
    upstream = await startUpstream();
  });
  afterAll(async () => {
    await upstream?.close();
    await receiver?.close();
  });

  it('exports spans with the resource the variables describe', async () => {
    const gw = await startGateway(configFor([{ name: 'api', prefix: '/api', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'edge-gateway',
      OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment.name=staging,host.name=edge-1',
    });
    try {
      const res = await send(`${gw.url}/api/resource-check`);
      const traceId = res.headers['x-trace-id'] as string;
      const spans = (await receiver.waitFor((all) => all.filter((s) => s.traceId === traceId).length === 2)).filter((s) => s.traceId === traceId);
      for (const span of spans) {
        expect(span.resource).toMatchObject({ 'service.name': 'edge-gateway', 'deployment.environment.name': 'staging', 'host.name': 'edge-1', 'telemetry.sdk.language': 'nodejs' });
        expect(span.resource['process.pid']).toBe(gw.process.pid);
      }
    } finally {
      await gw.stop();
    }
  });

  it('records nothing with a sampler that drops everything, and still proxies', async () => {
    const gw = await startGateway(configFor([{ name: 'api', prefix: '/api', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_TRACES_SAMPLER: 'traceidratio',
      OTEL_TRACES_SAMPLER_ARG: '0',
    });
    try {
      const res = await send(`${gw.url}/api/unsampled`);
      expect(res.status).toBe(200);
      const traceId = res.headers['x-trace-id'] as string;
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      const upstreamTraceparent = upstream.requests.at(-1)!.headers.traceparent as string;
      expect(upstreamTraceparent).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-0[02]$`));
      await new Promise((r) => setTimeout(r, 400));
      expect(receiver.spans.filter((s) => s.traceId === traceId)).toEqual([]);
    } finally {
      await gw.stop();
    }
  });

  it('with OTEL_SDK_DISABLED records no spans, says so at start-up, and still proxies and serves /metrics', async () => {
    const gw = await startGateway(configFor([{ name: 'api', prefix: '/api', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SDK_DISABLED: 'true',
    });
    try {
      await gw.waitForLog((l) => l.level === 'warn' && String(l.msg).includes('OTEL_SDK_DISABLED'));
      const res = await send(`${gw.url}/api/disabled`);
      expect(res.status).toBe(200);
      // No trace to name: the request ID is the only handle (no all-zero trace ID, no traceresponse).
      expect(res.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers['x-trace-id']).toBeUndefined();
      expect(res.headers.traceresponse).toBeUndefined();
      const missing = await send(`${gw.url}/nowhere`);
      expect(missing.status).toBe(404);
      expect(missing.headers['x-trace-id']).toBeUndefined();
      expect(JSON.parse(missing.body)).toEqual({ error: 'not_found', message: expect.any(String), requestId: missing.headers['x-request-id'] });
      await new Promise((r) => setTimeout(r, 400));
      expect(receiver.spans.filter((s) => s.attributes['url.path'] === '/api/disabled')).toEqual([]);
      const metrics = await send(`${gw.url}/metrics`);
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(/^http_server_request_duration_seconds_count\{.*http_route="\/api\/\*".*\} 1$/m);
    } finally {
      await gw.stop();
    }
  });
});
