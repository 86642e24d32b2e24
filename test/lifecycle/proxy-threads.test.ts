// The supervisor of the proxy threads (src/workers/proxy-threads.ts) with stand-in threads that
// can be made to die: a thread that dies is started again, what waited on it fails at once, and
// stop() waits for every thread.
import { Writable } from 'node:stream';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import { ProxyThreads } from '../../src/workers/proxy-threads.js';

const THREAD = new URL('../fixtures/threads/crashing-thread.mjs', import.meta.url);

function capture() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { base: undefined },
    new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
        done();
      },
    }),
  );
  return { logger, lines };
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

const config = configSchema.parse({
  listen: { port: 0 },
  upstreams: { api: { url: 'http://127.0.0.1:9' } },
  routes: [{ name: 'api', prefix: '/api', upstream: 'api' }],
});

describe('ProxyThreads', () => {
  it('joins the other threads to the port the first one got, and merges their metrics', async () => {
    const { logger } = capture();
    const threads = new ProxyThreads(config, logger, 3, { threadUrl: THREAD });
    const address = await threads.start();
    // The stand-in listens on 40001 when given port 0; the others are handed that port.
    expect(address.port).toBe(40001);
    expect(await threads.metricsText()).toBe('# TYPE served_total counter\nserved_total 6\n');
    await threads.stop();
    expect(threads.running).toBe(0);
  });

  it('starts a thread that died again, and fails what waited on it at once', async () => {
    const { logger, lines } = capture();
    const threads = new ProxyThreads(config, logger, 2, { threadUrl: THREAD });
    await threads.start();
    const started = Date.now();
    // Both stand-ins die when asked for their health.
    await expect(threads.snapshot()).rejects.toThrow(/worker \d stopped/);
    expect(Date.now() - started).toBeLessThan(4_000);
    await until(() => lines.filter((l) => String(l.msg).includes('exited unexpectedly')).length === 2);
    await until(() => threads.running === 2 && lines.filter((l) => String(l.msg).includes('is serving again')).length === 2);
    expect(await threads.metricsText()).toBe('# TYPE served_total counter\nserved_total 3\n');
    await threads.stop();
    expect(threads.running).toBe(0);
  });
});
