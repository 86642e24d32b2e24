import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import { startOtlpReceiver, type OtlpReceiver, type ReceivedSpan } from '../helpers/otlp-receiver.js';
import { rawHeaderValues, startUpstream, type TestUpstream } from '../helpers/upstream.js';

const TRACEPARENT_RE = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

let upstream: TestUpstream;
let receiver: OtlpReceiver;
let gateway: RunningGateway;
let untrusting: RunningGateway;

beforeAll(async () => {
  upstream = await startUpstream();
  receiver = await startOtlpReceiver();
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_SERVICE_NAME: 'gw-under-test' };
  gateway = await startGateway(configFor([{ name: 'users', prefix: '/api/users', url: `${upstream.url}/v1`, stripPrefix: true }]), env);
  untrusting = await startGateway(
    configFor([{ name: 'users', prefix: '/api/users', url: upstream.url }], { tracing: { trustInboundContext: false } }),
    env,
  );
});

afterAll(async () => {
  await gateway?.stop();
  await untrusting?.stop();
  await upstream?.close();
  await receiver?.close();
});

function spansOf(traceId: string, spans: ReceivedSpan[]): ReceivedSpan[] {
  return spans.filter((s) => s.traceId === traceId);
}

async function traceOf(traceId: string, count = 2): Promise<ReceivedSpan[]> {
  await receiver.waitFor((spans) => spansOf(traceId, spans).length >= count);
  return spansOf(traceId, receiver.spans);
}

describe('span tree for a proxied request', () => {
  it('makes a SERVER span and a CLIENT child whose id is the traceparent the upstream received', async () => {
    const res = await send(`${gateway.url}/api/users/42?sort=asc&token=hunter2`, { headers: { 'user-agent': 'spec-client/1.0' } });
    expect(res.status).toBe(200);
    const traceId = res.headers['x-trace-id'] as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);

    const recorded = upstream.requests.find((r) => r.headers['x-request-id'] === res.headers['x-request-id'])!;
    expect(recorded.url).toBe('/v1/42?sort=asc&token=hunter2');
    const sent = rawHeaderValues(recorded, 'traceparent');
    expect(sent).toHaveLength(1);
    const [, upTrace, upParent, upFlags] = TRACEPARENT_RE.exec(sent[0]!)!;
    expect(upTrace).toBe(traceId);
    // Sampled, and random: the gateway started this trace with a random trace-id (Level 2).
    expect(upFlags).toBe('03');

    const spans = await traceOf(traceId);
    expect(spans).toHaveLength(2);
    const server = spans.find((s) => s.kind === 'SERVER')!;
    const client = spans.find((s) => s.kind === 'CLIENT')!;
    expect(server.parentSpanId).toBe('');
    expect(client.parentSpanId).toBe(server.spanId);
    expect(client.spanId).toBe(upParent);

    expect(server.name).toBe('GET /api/users/*');
    expect(server.attributes).toMatchObject({
      'http.request.method': 'GET',
      'http.route': '/api/users/*',
      'url.path': '/api/users/42',
      'url.query': 'sort=asc&token=REDACTED',
      'url.scheme': 'http',
      'http.response.status_code': 200,
      'server.address': '127.0.0.1',
      'server.port': gateway.port,
      'client.address': '127.0.0.1',
      'user_agent.original': 'spec-client/1.0',
      'gateway.route': 'users',
      'gateway.upstream': 'users',
      'gateway.request_id': res.headers['x-request-id'],
    });
    expect(client.name).toBe('GET');
    expect(client.attributes).toMatchObject({
      'http.request.method': 'GET',
      'server.address': '127.0.0.1',
      'server.port': upstream.port,
      'url.full': `${upstream.url}/v1/42`,
      'http.response.status_code': 200,
      'gateway.upstream': 'users',
    });
    expect(server.status.code).toBe(0);
    // The exported spans carry the same W3C flags as the traceparent: sampled and random; the
    // server span's parent is not remote (it has none), the client's is local (0x100 only).
    expect(server.flags).toBe(0x103);
    expect(client.flags).toBe(0x103);
    expect(server.resource['service.name']).toBe('gw-under-test');
    // The server span brackets the client span.
    expect(client.startNs >= server.startNs && client.endNs <= server.endNs).toBe(true);

    const traceresponse = res.headers.traceresponse as string;
    expect(traceresponse).toBe(`00-${traceId}-${server.spanId}-03`);
    expect(res.headers['access-control-expose-headers']).toContain('X-Trace-ID');
  });

  it('uses OTLP http/protobuf by default and http/json when OTEL_EXPORTER_OTLP_PROTOCOL says so', async () => {
    expect(receiver.requests.some((r) => r.contentType === 'application/x-protobuf')).toBe(true);
    const json = await startGateway(configFor([{ name: 'users', prefix: '/api', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    });
    try {
      const res = await send(`${json.url}/api/x`);
      const spans = await traceOf(res.headers['x-trace-id'] as string);
      expect(spans.map((s) => s.kind).sort()).toEqual(['CLIENT', 'SERVER']);
      expect(receiver.requests.some((r) => r.contentType.startsWith('application/json'))).toBe(true);
    } finally {
      await json.stop();
    }
  });
});

describe('inbound trace context', () => {
  it('continues the trace of a real OTel-instrumented caller, end to end', async () => {
    const exporter = new InMemorySpanExporter();
    const provider = new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] });
    const propagator = new W3CTraceContextPropagator();
    const tracer = provider.getTracer('caller');
    const callerSpan = tracer.startSpan('call gateway', { kind: SpanKind.CLIENT });
    const headers: Record<string, string> = {};
    propagator.inject(trace.setSpan(context.active(), callerSpan), headers, { set: (c, k, v) => (c[k] = v) });
    headers.tracestate = 'vendor=abc';
    headers.baggage = 'tenant=acme';
    const res = await send(`${gateway.url}/api/users/continue`, { headers });
    callerSpan.end();
    const caller = exporter.getFinishedSpans()[0]!.spanContext();

    expect(res.headers['x-trace-id']).toBe(caller.traceId);
    const spans = await traceOf(caller.traceId);
    const server = spans.find((s) => s.kind === 'SERVER')!;
    const client = spans.find((s) => s.kind === 'CLIENT')!;
    expect(server.parentSpanId).toBe(caller.spanId);
    expect(client.parentSpanId).toBe(server.spanId);
    // The caller (an SDK without the Level 2 random bit) sent 01: kept; the server span's parent is remote.
    expect(server.flags).toBe(0x301);
    expect(client.flags).toBe(0x101);

    const recorded = upstream.requests.find((r) => r.headers['x-request-id'] === res.headers['x-request-id'])!;
    expect(rawHeaderValues(recorded, 'traceparent')).toEqual([`00-${caller.traceId}-${client.spanId}-01`]);
    expect(rawHeaderValues(recorded, 'tracestate')).toEqual(['vendor=abc']);
    expect(rawHeaderValues(recorded, 'baggage')).toEqual(['tenant=acme']);
    void propagation;
  });

  const malformed: Array<[string, string | string[]]> = [
    ['wrong length', '00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01'],
    ['upper-case hex', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00F067AA0BA902B7-01'],
    ['all-zero trace id', '00-00000000000000000000000000000000-00f067aa0ba902b7-01'],
    ['all-zero parent id', '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01'],
    ['version ff', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
    ['junk', 'hello world'],
    ['empty', ''],
    ['extra field on version 00', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra'],
    ['non-hex', '00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01'],
    ['two headers', ['00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-5bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01']],
  ];
  it.each(malformed)('starts a fresh trace for a malformed traceparent (%s), never an error', async (_name, value) => {
    const res = await send(`${gateway.url}/api/users/bad`, { headers: { traceparent: value, tracestate: 'vendor=abc' } });
    expect(res.status).toBe(200);
    const traceId = res.headers['x-trace-id'] as string;
    expect(traceId).toMatch(/^[0-9a-f]{32}$/);
    expect(traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    const recorded = upstream.requests.find((r) => r.headers['x-request-id'] === res.headers['x-request-id'])!;
    const sent = rawHeaderValues(recorded, 'traceparent');
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatch(new RegExp(`^00-${traceId}-[0-9a-f]{16}-03$`));
    // tracestate never travels without the traceparent it belongs to.
    expect(rawHeaderValues(recorded, 'tracestate')).toEqual([]);
    const spans = await traceOf(traceId);
    expect(spans.find((s) => s.kind === 'SERVER')!.parentSpanId).toBe('');
  });

  it('with trustInboundContext off, starts a new trace that links to the caller and forwards none of its state', async () => {
    const inbound = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await send(`${untrusting.url}/api/users/edge`, { headers: { traceparent: inbound, tracestate: 'vendor=abc', baggage: 'a=b' } });
    expect(res.status).toBe(200);
    const traceId = res.headers['x-trace-id'] as string;
    expect(traceId).not.toBe('4bf92f3577b34da6a3ce929d0e0e4736');
    const spans = await traceOf(traceId);
    const server = spans.find((s) => s.kind === 'SERVER')!;
    expect(server.parentSpanId).toBe('');
    expect(server.links).toEqual([
      { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', attributes: { 'gateway.link.reason': 'untrusted_inbound_context' } },
    ]);
    const recorded = upstream.requests.find((r) => r.headers['x-request-id'] === res.headers['x-request-id'])!;
    expect(rawHeaderValues(recorded, 'traceparent')[0]).toContain(traceId);
    expect(rawHeaderValues(recorded, 'tracestate')).toEqual([]);
    expect(rawHeaderValues(recorded, 'baggage')).toEqual([]);
  });

  it('removes inbound B3 and Jaeger headers so the upstream sees one trace context only', async () => {
    const res = await send(`${gateway.url}/api/users/b3`, {
      headers: { b3: '80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1', 'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7', 'uber-trace-id': 'abc:def:0:1', 'uberctx-k': 'v' },
    });
    const recorded = upstream.requests.find((r) => r.headers['x-request-id'] === res.headers['x-request-id'])!;
    const names = recorded.rawHeaders.map(([k]) => k.toLowerCase());
    expect(names).not.toContain('b3');
    expect(names).not.toContain('x-b3-traceid');
    expect(names).not.toContain('uber-trace-id');
    expect(names).not.toContain('uberctx-k');
    expect(rawHeaderValues(recorded, 'traceparent')).toHaveLength(1);
  });
});

describe('span limits', () => {
  it('applies the OTEL_SPAN_ATTRIBUTE_* limits to the attributes the gateway sets', async () => {
    const limited = await startGateway(configFor([{ name: 'users', prefix: '/api/users', url: upstream.url }]), {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_SERVICE_NAME: 'gw-limited',
      OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: '12',
      OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: '4',
    });
    try {
      const res = await send(`${limited.url}/api/users/a-rather-long-path-segment`, { headers: { 'user-agent': 'limit-client/1.0 (with a long comment)' } });
      expect(res.status).toBe(200);
      const spans = await traceOf(res.headers['x-trace-id'] as string);
      for (const span of spans) {
        const values = Object.values(span.attributes);
        expect(values.length).toBeLessThanOrEqual(4);
        expect(span.droppedAttributesCount).toBeGreaterThan(0);
        for (const v of values) if (typeof v === 'string') expect(v.length).toBeLessThanOrEqual(12);
      }
      const server = spans.find((s) => s.kind === 'SERVER')!;
      // The first attributes set are the ones kept; later ones (the status code at the end) are dropped.
      expect(server.attributes['http.request.method']).toBe('GET');
      expect(server.attributes['url.path']).toBe('/api/users/a');
    } finally {
      await limited.stop();
    }
  });
});

describe('reserved paths', () => {
  it('produces no spans for /metrics and health probes', async () => {
    for (const path of ['/metrics', '/health', '/health/live', '/health/ready']) {
      const res = await send(`${gateway.url}${path}`);
      expect(res.headers['x-trace-id']).toBeUndefined();
    }
    const marker = await send(`${gateway.url}/api/users/marker`);
    await traceOf(marker.headers['x-trace-id'] as string);
    // The marker's spans arrived, so anything the probes produced (sent earlier) would have too.
    const probeSpans = receiver.spans.filter((s) => /^\/(metrics|health)/.test(String(s.attributes['url.path'] ?? s.attributes['url.full'] ?? '')) || /metrics|health/.test(s.name));
    expect(probeSpans).toEqual([]);
  });
});
