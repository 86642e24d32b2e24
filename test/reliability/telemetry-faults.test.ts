import { createServer, type Server } from 'node:http';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { parseExposition } from '../helpers/exposition.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

/**
 * A collector stand-in that can be switched between healthy, 503, 429, slow and gone. It is a
 * real HTTP server on 127.0.0.1 that the gateway's real OTLP exporter talks to.
 */
type Mode = 'ok' | '503' | '429' | 'slow' | 'down';
let mode: Mode = 'ok';
let accepted = 0;
/** Export requests the collector is holding (slow mode) right now. */
let held = 0;
let collector: Server;
let collectorPort = 0;

async function startCollector(port = 0): Promise<void> {
  collector = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (mode === '503') return void res.writeHead(503).end();
      if (mode === '429') return void res.writeHead(429, { 'retry-after': '1' }).end();
      if (mode === 'slow') {
        held++;
        return void setTimeout(() => {
          held--;
          res.writeHead(200).end();
        }, 3000);
      }
      accepted++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => collector.listen(port, '127.0.0.1', r));
  collectorPort = (collector.address() as { port: number }).port;
}

let upstream: TestUpstream;
let gateway: RunningGateway;

beforeAll(async () => {
  await startCollector();
  upstream = await startUpstream();
  gateway = await startGateway(configFor([{ name: 'svc', prefix: '/svc', url: upstream.url }]), {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${collectorPort}`,
    OTEL_BSP_SCHEDULE_DELAY: '50',
    OTEL_BSP_MAX_QUEUE_SIZE: '100',
    OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '20',
    OTEL_BSP_EXPORT_TIMEOUT: '1500',
    OTEL_EXPORTER_OTLP_TIMEOUT: '1000',
    GATEWAY_EXPORT_LOG_INTERVAL_MS: '1000',
  });
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
  collector?.closeAllConnections();
  collector?.close();
});

async function burst(n: number): Promise<{ statuses: number[]; slowest: number; whileHeld: number }> {
  const agent = new Agent({ connections: 20 });
  let slowest = 0;
  let whileHeld = 0;
  const statuses = await Promise.all(
    Array.from({ length: n }, async () => {
      const t = Date.now();
      const res = await request(`${gateway.url}/svc/x`, { dispatcher: agent });
      await res.body.dump();
      if (held > 0) whileHeld++;
      slowest = Math.max(slowest, Date.now() - t);
      return res.statusCode;
    }),
  );
  await agent.close();
  return { statuses, slowest, whileHeld };
}

async function telemetryCounts() {
  const families = parseExposition((await send(`${gateway.url}/metrics`)).body);
  const spans = families.get('gateway_telemetry_spans_total');
  const by = (outcome: string) => spans?.samples.find((s) => s.labels.outcome === outcome)?.value ?? 0;
  return { exported: by('exported'), failed: by('failed'), dropped: by('dropped'), queue: families.get('gateway_telemetry_queue_size')!.samples[0]!.value };
}

describe('the collector misbehaves; the gateway keeps serving', () => {
  it.each(['503', '429', 'slow', 'down'] as const)('collector %s: no request fails or waits on export, the queue stays bounded, drops are counted, the log reports once per interval, export resumes', async (fault) => {
    mode = 'ok';
    await burst(20);
    const before = await telemetryCounts();
    const logsBefore = gateway.logs.length;
    if (fault === 'down') {
      collector.closeAllConnections();
      await new Promise<void>((r) => collector.close(() => r()));
    } else {
      mode = fault;
    }
    const started = Date.now();
    let completedWhileExportHeld = 0;
    for (let round = 0; round < 4; round++) {
      const { statuses, slowest, whileHeld } = await burst(150);
      expect(statuses.every((s) => s === 200)).toBe(true);
      // A sanity bound only; the causal check is below.
      expect(slowest).toBeLessThan(5000);
      completedWhileExportHeld += whileHeld;
      await new Promise((r) => setTimeout(r, 300));
    }
    // Requests complete while the collector sits on an export: export is not on the request path.
    if (fault === 'slow') expect(completedWhileExportHeld).toBeGreaterThan(100);
    const elapsed = Date.now() - started;
    const during = await telemetryCounts();
    expect(during.queue).toBeLessThanOrEqual(100);
    expect(during.dropped - before.dropped + (during.failed - before.failed)).toBeGreaterThan(0);
    const reports = gateway.logs.slice(logsBefore).filter((l) => String(l.msg).startsWith('span export'));
    expect(reports.length).toBeGreaterThan(0);
    // Once per 1 s interval at most (plus the first report), not once per batch of 20 spans.
    expect(reports.length).toBeLessThanOrEqual(Math.ceil(elapsed / 1000) + 1);
    expect(reports.every((l) => l.level === 'warn')).toBe(true);

    // Recovery.
    if (fault === 'down') await startCollector(collectorPort);
    mode = 'ok';
    const acceptedBefore = accepted;
    const deadline = Date.now() + 15_000;
    while (accepted === acceptedBefore && Date.now() < deadline) {
      await burst(10);
      await new Promise((r) => setTimeout(r, 300));
    }
    expect(accepted).toBeGreaterThan(acceptedBefore);
    await gateway.waitForLog((l) => l.msg === 'span export recovered', 15_000);
    expect((await telemetryCounts()).exported).toBeGreaterThan(during.exported);
  });
});
