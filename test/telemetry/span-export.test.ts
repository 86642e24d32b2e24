// Span export as the gateway runs it: the compiled modules (dist/) send real SDK spans to a real
// OTLP receiver, as OTLP protobuf written on this thread (http/protobuf) or through the export
// thread (http/json).
import { once } from 'node:events';
import { createServer } from 'node:net';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOtlpReceiver, type OtlpReceiver } from '../helpers/otlp-receiver.js';

type Processor = import('../../src/telemetry/export-thread.js').ThreadedExportProcessor;
type ThreadModule = typeof import('../../src/telemetry/export-thread.js');
type ProtoModule = typeof import('../../src/telemetry/otlp-proto.js');
type AnyProcessor = Pick<Processor, 'onEnd' | 'forceFlush' | 'shutdown' | 'setLogger'>;

let receiver: OtlpReceiver;
let mod: ThreadModule;
let proto: ProtoModule;
const saved = { endpoint: process.env.OTEL_EXPORTER_OTLP_ENDPOINT, timeout: process.env.OTEL_EXPORTER_OTLP_TIMEOUT };

beforeAll(async () => {
  receiver = await startOtlpReceiver();
  mod = (await import(new URL('../../dist/src/telemetry/export-thread.js', import.meta.url).href)) as ThreadModule;
  proto = (await import(new URL('../../dist/src/telemetry/otlp-proto.js', import.meta.url).href)) as ProtoModule;
});

afterAll(async () => {
  for (const [name, value] of [['OTEL_EXPORTER_OTLP_ENDPOINT', saved.endpoint], ['OTEL_EXPORTER_OTLP_TIMEOUT', saved.timeout]] as const) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await receiver?.close();
});

interface Logged {
  level: 'warn' | 'info';
  obj: Record<string, unknown>;
  msg: string;
}

type Route = 'export thread' | 'request thread';
type Options = { timeoutMs?: number; maxQueueSize?: number; batch?: number };

/** Both read OTEL_* when they start, as the gateway's do. */
function exportTo<P extends AnyProcessor>(make: (options: import('../../src/telemetry/export-monitor.js').MonitorOptions) => P, endpoint: string, opts: Options): { p: P; logs: Logged[] } {
  process.env.OTEL_EXPORTER_OTLP_ENDPOINT = endpoint;
  process.env.OTEL_EXPORTER_OTLP_TIMEOUT = String(opts.timeoutMs ?? 10_000);
  const p = make({ maxQueueSize: opts.maxQueueSize ?? 2048, maxExportBatchSize: opts.batch ?? 128, scheduledDelayMillis: 60_000, logIntervalMs: 0 });
  const logs: Logged[] = [];
  p.setLogger({ warn: (obj, msg) => logs.push({ level: 'warn', obj: obj as Record<string, unknown>, msg }), info: (obj, msg) => logs.push({ level: 'info', obj: obj as Record<string, unknown>, msg }) });
  return { p, logs };
}

function processorTo(endpoint: string, opts: Options = {}): { p: Processor; logs: Logged[] } {
  return exportTo((o) => new mod.ThreadedExportProcessor(o), endpoint, opts);
}

function exporterOn(route: Route, endpoint: string, opts: Options = {}): { p: AnyProcessor; logs: Logged[] } {
  return route === 'export thread' ? processorTo(endpoint, opts) : exportTo((o) => new proto.OtlpProtoExportProcessor(o), endpoint, opts);
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

function named(tag: string) {
  return (all: OtlpReceiver['spans']) => all.filter((s) => s.name === `GET /${tag}`);
}

describe('span export', () => {
  it.each([
    ['export thread', 'http/json'],
    ['request thread', 'http/protobuf'],
  ] as const)('delivers every span, unchanged, in full batches and a flushed rest (%s, %s)', async (route, protocol) => {
    const { p, logs } = exporterOn(route, receiver.url);
    const tag = protocol === 'http/json' ? 'json' : 'proto';
    const spans = makeSpans(300, tag);
    const requestsBefore = receiver.requests.length;
    for (const span of spans) p.onEnd(span);
    // Two full batches of 128 left as they filled; the remaining 44 leave on flush.
    await receiver.waitFor((all) => named(tag)(all).length >= 256);
    await p.forceFlush();
    const got = named(tag)(await receiver.waitFor((all) => named(tag)(all).length >= 300));
    expect(got).toHaveLength(300);
    expect(receiver.requests.length - requestsBefore).toBe(3);
    const first = got.find((s) => s.attributes['gateway.request_id'] === `${tag}-0`)!;
    expect(first).toMatchObject({ kind: 'SERVER', status: { code: 2, message: 'failed' }, resource: { 'service.name': `svc-${tag}` }, scope: 'tracing-gateway' });
    expect(first.traceId).toBe(spans[0]!.spanContext().traceId);
    expect(first.events.map((e) => e.name)).toEqual(['exception']);
    expect(receiver.requests.at(-1)!.contentType).toContain(protocol === 'http/json' ? 'json' : 'protobuf');
    expect(logs).toEqual([]);
    await p.shutdown();
  });

  it.each(['export thread', 'request thread'] as const)('counts and reports a failed batch when the collector cannot be reached (%s)', async (route) => {
    const closed = createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const port = (closed.address() as { port: number }).port;
    closed.close();
    // A short export timeout: the exporter retries a refused connection until it runs out.
    const { p, logs } = exporterOn(route, `http://127.0.0.1:${port}`, { timeoutMs: 1500 });
    for (const span of makeSpans(3, 'down')) p.onEnd(span);
    await p.forceFlush();
    expect(logs).toHaveLength(1);
    expect(logs[0]).toMatchObject({ level: 'warn', obj: { failed_spans: 3 } });
    await p.shutdown();
  });

  it.each(['export thread', 'request thread'] as const)('drops (and reports) spans beyond the queue limit instead of growing (%s)', async (route) => {
    const tag = route === 'export thread' ? 'full-t' : 'full-r';
    const { p, logs } = exporterOn(route, receiver.url, { maxQueueSize: 10, batch: 100 });
    for (const span of makeSpans(15, tag)) p.onEnd(span);
    expect(logs.at(-1)).toMatchObject({ level: 'warn', obj: { dropped_spans: 1 } });
    await p.forceFlush();
    expect(named(tag)(await receiver.waitFor((all) => named(tag)(all).length >= 10))).toHaveLength(10);
    await p.shutdown();
  });

  it('fails the batches a dead thread held, then starts a new thread that exports (resource defined again)', async () => {
    const { p } = processorTo(receiver.url, { batch: 5 });
    const first = p.exportThread.current!;
    // One batch reaches the first thread, which then stops.
    for (const span of makeSpans(5, 'before')) p.onEnd(span);
    await receiver.waitFor((all) => named('before')(all).length >= 5);
    await first.terminate();
    for (const span of makeSpans(5, 'again')) p.onEnd(span);
    await p.forceFlush();
    expect(p.exportThread.current).not.toBe(first);
    const got = named('again')(await receiver.waitFor((all) => named('again')(all).length >= 5));
    expect(got[0]!.resource['service.name']).toBe('svc-again');
    await p.shutdown();
  });

  it('exports what is waiting on shutdown, then stops the thread and takes no more spans', async () => {
    const { p } = processorTo(receiver.url);
    const thread = p.exportThread.current!;
    const exited = once(thread, 'exit');
    for (const span of makeSpans(7, 'last')) p.onEnd(span);
    await p.shutdown();
    await exited;
    expect(named('last')(receiver.spans)).toHaveLength(7);
    expect(p.exportThread.current).toBeUndefined();
    p.onEnd(makeSpans(1, 'late')[0]!);
    await p.forceFlush();
    expect(named('late')(receiver.spans)).toHaveLength(0);
  });
});
