// Microbenchmark of the tracing work one proxied request does on the request thread: the SERVER
// span from the inbound headers, the CLIENT span, the outgoing traceparent, two status
// attributes, both ends; with the SDK's tracer or the gateway's own, with spans dropped or written
// as OTLP protobuf. Each variant runs in its own process (no shared JIT state), alternating, and
// the median CPU µs per request over the rounds is reported.
//
//   npm run build && node bench/spans.ts [--rounds 5] [--requests 300000] [--builds dist,dist-before]
//
// --builds compares compiled gateway builds (directories under the repository root, as for
// bench/compare.ts): every variant of every build runs in turn in each round.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { Context, Span, TextMapPropagator } from '@opentelemetry/api';
import type { ReadableSpan } from '@opentelemetry/sdk-trace';

const ROOT = resolve(import.meta.dirname, '..');
// otlp-only: the OTLP protobuf writing alone, of the spans one request makes with the gateway's tracer.
const VARIANTS = ['off', 'sdk', 'gateway', 'sdk+otlp', 'gateway+otlp', 'otlp-only'] as const;
type Variant = (typeof VARIANTS)[number];

interface SpansModule {
  useGatewayTracer(tracer: unknown): void;
  startServerSpan(input: object): { span: Span; context: Context; traceFlags: number };
  startClientSpan(parent: Context, input: object): { span: Span; context: Context };
  injectTraceHeaders(context: Context, headers: Record<string, string>, traceFlags: number): void;
}

async function runVariant(variant: Variant, requests: number, build: string): Promise<number> {
  const { context, propagation, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { resourceFromAttributes } = await import('@opentelemetry/resources');
  const { AlwaysOffSampler, AlwaysOnSampler, NoopSpanProcessor, TracerProvider } = await import('@opentelemetry/sdk-trace');
  type Processor = import('@opentelemetry/sdk-trace').SpanProcessor;
  const dist = (path: string) => resolve(ROOT, build, 'src', path);
  // The compiled gateway modules (the bench's own type check does not cover src/).
  const { propagatorFromEnv } = (await import(dist('tracing/propagators.js'))) as { propagatorFromEnv(value: undefined, warn: () => void): TextMapPropagator };
  const spans = (await import(dist('tracing/spans.js'))) as SpansModule;
  const { GatewayTracer } = (await import(dist('tracing/gateway-tracer.js'))) as { GatewayTracer: new (options: object) => unknown };
  const { OtlpProtoEncoder } = (await import(dist('telemetry/otlp-proto.js'))) as { OtlpProtoEncoder: new () => { size: number; add(span: ReadableSpan): void; take(): unknown } };

  const ended: ReadableSpan[] = [];
  const processors: Processor[] = [new NoopSpanProcessor()];
  if (variant === 'otlp-only') {
    processors.push({ onStart() {}, onEnd: (span) => void ended.push(span), forceFlush: async () => {}, shutdown: async () => {} });
  }
  if (variant.endsWith('+otlp')) {
    // What the OTLP protobuf export does on the request thread: each span written as it ends.
    const encoder = new OtlpProtoEncoder();
    processors.push({
      onStart() {},
      onEnd(span) {
        encoder.add(span);
        if (encoder.size >= 512) encoder.take();
      },
      forceFlush: async () => {},
      shutdown: async () => {},
    });
  }
  const resource = resourceFromAttributes({ 'service.name': 'bench' });
  const sampler = variant === 'off' ? new AlwaysOffSampler() : new AlwaysOnSampler();
  const spanLimits = { attributeValueLengthLimit: 2048 };
  context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
  propagation.setGlobalPropagator(propagatorFromEnv(undefined, () => {}));
  trace.setGlobalTracerProvider(new TracerProvider({ resource, sampler, spanLimits, spanProcessors: processors }));
  if (variant.startsWith('gateway') || variant === 'otlp-only') spans.useGatewayTracer(new GatewayTracer({ resource, sampler, spanLimits, spanProcessors: processors }));

  const req = {
    headers: { host: '127.0.0.1:8080', 'user-agent': 'wrk', accept: '*/*' },
    httpVersion: '1.1',
    method: 'GET',
    socket: { remoteAddress: '127.0.0.1' },
  };
  const routeAttributes = { 'http.route': '/api/*', 'gateway.route': 'api', 'gateway.upstream': 'nginx' };
  const one = (i: number): void => {
    const server = spans.startServerSpan({ req, method: 'GET', path: '/api/x', query: undefined, requestId: `req-${i}`, trustInbound: true, name: 'GET /api/*', routeAttributes });
    const client = spans.startClientSpan(server.context, { method: 'GET', upstreamName: 'nginx', hostname: '127.0.0.1', port: 8081, urlFull: 'http://127.0.0.1:8081/x' });
    spans.injectTraceHeaders(client.context, {}, server.traceFlags);
    client.span.setAttribute('http.response.status_code', 200);
    client.span.end();
    server.span.setAttribute('http.response.status_code', 200);
    server.span.end();
  };
  // The variant is what it says: a gateway span, an SDK span, or none recorded.
  const probe = spans.startServerSpan({ req, method: 'GET', path: '/', query: undefined, requestId: 'probe', trustInbound: true, routeAttributes });
  const made = variant === 'off' ? (probe.span.isRecording() ? 'recording' : 'none') : probe.span.constructor.name;
  const expected = variant === 'off' ? 'none' : variant.startsWith('sdk') ? 'SpanImpl' : 'GatewaySpan';
  if (made !== expected) throw new Error(`variant ${variant} made ${made} spans, expected ${expected}`);
  probe.span.end();
  if (variant === 'otlp-only') {
    // 256 requests' spans, made once, written again and again in batches of 512 (the default batch size).
    ended.length = 0;
    for (let i = 0; i < 256; i++) one(i);
    if (ended.length !== 512) throw new Error(`otlp-only: 256 requests ended ${ended.length} spans, expected 512`);
    const encoder = new OtlpProtoEncoder();
    const batch = (): void => {
      for (const span of ended) encoder.add(span);
      encoder.take();
    };
    const batches = Math.max(1, Math.round(requests / 256));
    for (let i = 0; i < batches / 2; i++) batch();
    const start = process.cpuUsage();
    for (let i = 0; i < batches; i++) batch();
    const cpu = process.cpuUsage(start);
    return (cpu.user + cpu.system) / (batches * 256);
  }
  for (let i = 0; i < requests / 2; i++) one(i);
  const before = process.cpuUsage();
  for (let i = 0; i < requests; i++) one(i);
  const used = process.cpuUsage(before);
  return (used.user + used.system) / requests;
}

const child = process.env.GATEWAY_SPAN_BENCH_VARIANT as Variant | undefined;
if (child !== undefined) {
  process.stdout.write(`${await runVariant(child, Number(process.env.GATEWAY_SPAN_BENCH_REQUESTS), process.env.GATEWAY_SPAN_BENCH_BUILD ?? 'dist')}\n`);
} else {
  const { values } = parseArgs({
    options: { rounds: { type: 'string', default: '5' }, requests: { type: 'string', default: '300000' }, builds: { type: 'string', default: 'dist' } },
  });
  const rounds = Number(values.rounds);
  const requests = Number(values.requests);
  if (!(rounds >= 1 && requests >= 1000)) throw new Error('--rounds ≥ 1, --requests ≥ 1000');
  const builds = values.builds.split(',').filter((b) => b !== '');
  for (const build of builds) {
    if (!/^[\w.-]+$/.test(build) || !existsSync(resolve(ROOT, build, 'src/tracing/spans.js'))) throw new Error(`--builds: ${build} is not a compiled gateway directly under ${ROOT}`);
  }
  const runs = builds.flatMap((build) => VARIANTS.map((variant) => ({ build, variant, label: builds.length > 1 ? `${build} ${variant}` : variant, results: [] as number[] })));
  for (let round = 0; round < rounds; round++) {
    for (const run of round % 2 === 0 ? runs : [...runs].reverse()) {
      const out = execFileSync(process.execPath, ['--max-semi-space-size=16', import.meta.filename], {
        cwd: ROOT,
        env: { ...process.env, GATEWAY_SPAN_BENCH_VARIANT: run.variant, GATEWAY_SPAN_BENCH_REQUESTS: String(requests), GATEWAY_SPAN_BENCH_BUILD: run.build },
        encoding: 'utf8',
      });
      run.results.push(Number(out.trim()));
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  process.stdout.write(`${rounds} rounds × ${requests} requests per variant, CPU µs per request (median; min–max)\n\n| variant | µs/req | range |\n|---|--:|--:|\n`);
  for (const { label, results: xs } of runs) {
    process.stdout.write(`| ${label} | ${median(xs).toFixed(2)} | ${Math.min(...xs).toFixed(2)}–${Math.max(...xs).toFixed(2)} |\n`);
  }
}
