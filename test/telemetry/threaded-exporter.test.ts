// The export thread as the gateway runs it: the compiled module (dist/) sends real SDK spans
// through a real worker thread to a real OTLP receiver.
import { once } from 'node:events';
import { createServer } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';

type Threaded = import('../../src/telemetry/threaded-exporter.js').ThreadedSpanExporter;
type ThreadedModule = typeof import('../../src/telemetry/threaded-exporter.js');

let receiver: OtlpReceiver;
let mod: ThreadedModule;
const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, timeout: process.env.OTEL_EXPORTER_OTLP_TIMEOUT };

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  mod = (await import(new URL('../../dist/src/telemetry/threaded-exporter.js', import.meta.url).href)) as ThreadedModule;
});

afterAll(async () => {
  for (const [name, value] of [['OTEL_EXPORTER_OTLP_ENDPOINT', saved.endpoint], ['OTEL_EXPORTER_OTLP_TIMEOUT', saved.timeout]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await receiver?.close();
});

/** The export thread reads OTEL_* when it starts, as the gateway's own thread does. */
function exporterTo(endpoint: string, protocol: 'http/protobuf' | 'http/json' = 'http/protobuf', timeoutMs = 10_000): Threaded {
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
  process.env.OTEL_EXPORTER_OTLP_TIMEOUT = String(timeoutMs);
  return new mod.ThreadedSpanExporter(protocol);
}

function makeSpans(n: number, tag: string): ReadableSpan[] {
  const memory = new InMemorySpanExporter();
  const provider = new TracerProvider({ resource: resourceFromAttributes({ 'service.name': `svc-${tag}` }), spanProcessors: [new SimpleSpanProcessor({ exporter: memory })] });
  const tracer = provider.getTracer('tracing-gateway');
  for (let i = 0; i < n; i++) {
    const span = tracer.startSpan(`GET /${tag}`, { kind: SpanKind.SERVER, attributes: { 'gateway.request_id': `${tag}-${i}`, 'http.response.status_code': 200 } });
    if (i === 0) {
      span.recordException(new Error('boom'));
      span.setStatus({ code: SpanStatusCode.ERROR, message: 'failed' });
    }
    span.end();
  }
  return memory.getFinishedSpans();
}

function exportOnce(exporter: Threaded, spans: ReadableSpan[]): Promise<ExportResult> {
  return new Promise((resolve) => exporter.export(spans, resolve));
}

describe('span export thread', () => {
  it.each(['http/protobuf', 'http/json'] as const)('delivers every span of a batch, unchanged, over %s', async (protocol) => {
    const exporter = exporterTo(receiver.url, protocol);
    const tag = protocol === 'http/json' ? 'json' : 'proto';
    const spans = makeSpans(300, tag);
    const result = await exportOnce(exporter, spans);
    expect(result.code).toBe(ExportResultCode.SUCCESS);
    const got = (await receiver.waitFor((all) => all.filter((s) => s.name === `GET /${tag}`).length >= 300)).filter((s) => s.name === `GET /${tag}`);
    expect(got).toHaveLength(300);
    const first = got.find((s) => s.attributes['gateway.request_id'] === `${tag}-0`)!;
    expect(first).toMatchObject({ kind: 'SERVER', status: { code: 2, message: 'failed' }, resource: { 'service.name': `svc-${tag}` }, scope: 'tracing-gateway' });
    expect(first.traceId).toBe(spans[0]!.spanContext().traceId);
    expect(first.events.map((e) => e.name)).toEqual(['exception']);
    expect(receiver.requests.at(-1)!.contentType).toContain(protocol === 'http/json' ? 'json' : 'protobuf');
    await exporter.shutdown();
  });

  it('reports a failed batch when the collector cannot be reached', async () => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    closed.close();
    // A short export timeout: the exporter retries a refused connection until it runs out.
    const exporter = exporterTo(`http://127.0.0.1:${port}`, 'http/protobuf', 1500);
    const result = await exportOnce(exporter, makeSpans(3, 'down'));
    expect(result.code).toBe(ExportResultCode.FAILED);
    expect(result.error?.message).toBeTruthy();
    await exporter.shutdown();
  });

  it('fails the batches a dead thread held, then starts a new thread that exports (resource included)', async () => {
    const exporter = exporterTo(receiver.url);
    const first = exporter.currentThread!;
    const pending = exportOnce(exporter, makeSpans(5, 'lost'));
    await first.terminate();
    const lost = await pending;
    // Either the thread finished the batch before it was stopped, or the batch is reported failed.
    if (lost.code === ExportResultCode.FAILED) expect(lost.error?.message).toMatch(/span export thread (exited|failed)/);
    const after = await exportOnce(exporter, makeSpans(5, 'again'));
    expect(after.code).toBe(ExportResultCode.SUCCESS);
    expect(exporter.currentThread).not.toBe(first);
    const got = await receiver.waitFor((all) => all.filter((s) => s.name === 'GET /again').length >= 5);
    expect(got.find((s) => s.name === 'GET /again')!.resource['service.name']).toBe('svc-again');
    await exporter.shutdown();
  });

  it('refuses batches after shutdown and leaves no thread running', async () => {
    const exporter = exporterTo(receiver.url);
    const thread = exporter.currentThread!;
    const exited = once(thread, 'exit');
    await exporter.shutdown();
    await exited;
    expect(exporter.currentThread).toBeUndefined();
    const result = await exportOnce(exporter, makeSpans(1, 'late'));
    expect(result.code).toBe(ExportResultCode.FAILED);
  });
});
