// Real SDK spans for the span encoders' tests.
import { SpanKind, SpanStatusCode, ROOT_CONTEXT, trace, type Attributes, type Tracer } from '@opentelemetry/api';
import { TraceState } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';

/** Real SDK spans covering every field the OTLP serialisers read. */
export function makeSpans(): { spans: ReadableSpan[]; provider: TracerProvider } {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({
    resource: resourceFromAttributes({ 'service.name': 'gw', 'deployment.environment.name': 'test', 'host.cores': 2 }),
    spanProcessors: [new SimpleSpanProcessor({ exporter: memory })],
  });
  const tracer: Tracer = provider.getTracer('tracing-gateway', '1.2.3', { schemaUrl: 'https://opentelemetry.io/schemas/1.30.0' });
  const other = provider.getTracer('another-scope');
  const remoteParent = trace.setSpanContext(ROOT_CONTEXT, {
    traceId: '0af7651916cd43dd8448eb211c80319c',
    spanId: 'b7ad6b7169203331',
    traceFlags: 1,
    isRemote: true,
    traceState: new TraceState('congo=t61rcWkgMzE,rojo=00f067aa0ba902b7'),
  });
  const server = tracer.startSpan(
    'GET /api/*',
    {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'GET', 'url.path': '/api/é/\u{1F600}', 'server.port': 8080, 'gateway.flag': true, 'list.s': ['a', 'b'], 'list.n': [1, 2.5] },
      links: [
        { context: { traceId: '11111111111111111111111111111111', spanId: '2222222222222222', traceFlags: 0, isRemote: true }, attributes: { 'gateway.link.reason': 'untrusted_inbound_context' } },
        { context: { traceId: '33333333333333333333333333333333', spanId: '4444444444444444', traceFlags: 1, traceState: new TraceState('a=1') } },
      ],
    },
    remoteParent,
  );
  const client = tracer.startSpan('GET', { kind: SpanKind.CLIENT, attributes: { 'url.full': 'http://127.0.0.1:1/x' } }, trace.setSpan(ROOT_CONTEXT, server));
  client.recordException(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
  client.addEvent('retry', { attempt: 2 });
  client.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream refused' });
  client.end();
  server.setStatus({ code: SpanStatusCode.OK });
  server.end();
  const root = other.startSpan('internal work');
  root.end();
  return { spans: memory.getFinishedSpans(), provider };
}

/** One span carrying `attributes` (set through the SDK, so they are what a real span holds). */
export function spanWith(attributes: Record<string, unknown>, provider: TracerProvider): ReadableSpan {
  const span = provider.getTracer('t').startSpan('s');
  span.setAttributes(attributes as Attributes);
  span.end();
  return span as unknown as ReadableSpan;
}

/** Attribute values of every kind the SDK accepts: scripts, lengths, numbers, arrays, maps, bytes. */
export const EVERY_VALUE_KIND: Record<string, unknown> = {
  long: 'x'.repeat(5000),
  mixed: `${'a'.repeat(95)}é${'\u{1F600}'.repeat(40)}`,
  ascii: 'plain',
  empty: '',
  cjk: '追踪网关',
  lone: 'a\uD800b',
  int: 42,
  negative: -7,
  float: 0.1,
  big: 2 ** 53 + 2,
  nan: Number.NaN,
  yes: true,
  no: false,
  strings: ['a', 'é', ''],
  numbers: [1, 2.5, -0],
  bools: [true, false],
  withNull: ['a', null, 'b'],
  bytes: new Uint8Array([0, 1, 254, 255]),
  map: { nested: { deep: ['x', 1] }, flag: true },
  nothing: null,
};
