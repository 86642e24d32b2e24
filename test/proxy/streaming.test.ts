import { request as httpRequest, type IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

const SIZE = 50 * 1024 * 1024;
const CHUNK = Buffer.alloc(64 * 1024, 120);
/** Loopback socket buffers on both hops plus stream high-water marks; far below the body size. */
const MAX_IN_FLIGHT = 16 * 1024 * 1024;

function generate(total: number, counter?: { produced: number }): Readable {
  let sent = 0;
  return new Readable({
    highWaterMark: CHUNK.length,
    read() {
      if (sent >= total) return void this.push(null);
      sent += CHUNK.length;
      if (counter) counter.produced = sent;
      this.push(CHUNK);
    },
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let upstream: TestUpstream;
let gateway: RunningGateway;
const download = { produced: 0 };
let uploadReader: { received: number; paused: boolean; req?: IncomingMessage } = { received: 0, paused: true };

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    if (req.url!.endsWith('/download')) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': SIZE });
      generate(SIZE, download).pipe(res);
      return;
    }
    // Upload: read nothing until the test says so.
    uploadReader = { received: 0, paused: true, req };
    req.pause();
    req.on('data', (c: Buffer) => (uploadReader.received += c.length));
    req.on('end', () => res.end(String(uploadReader.received)));
  });
  gateway = await startGateway(configFor([{ name: 'files', prefix: '/files', url: upstream.url }]));
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
});

describe('streaming bodies (never buffered whole)', () => {
  it('a 50 MB download: a stalled client stalls the upstream, then every byte arrives', async () => {
    let received = 0;
    const res = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = httpRequest(`${gateway.url}/files/download`, resolve);
      req.on('error', reject);
      req.end();
    });
    expect(res.statusCode).toBe(200);
    res.pause();
    await sleep(800);
    // Nothing was read: what the upstream produced is held in socket buffers, not in the gateway.
    expect(download.produced).toBeLessThan(MAX_IN_FLIGHT);
    for await (const chunk of res) received += (chunk as Buffer).length;
    expect(received).toBe(SIZE);
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.path === '/files/download');
    expect(line.bytes_out).toBe(SIZE);
  });

  it('a 50 MB upload: a stalled upstream stalls the client, then every byte arrives', async () => {
    const sent = { produced: 0 };
    const pending = request(`${gateway.url}/files/upload`, { method: 'PUT', body: generate(SIZE, sent), headers: { 'content-type': 'application/octet-stream' } });
    await sleep(800);
    expect(sent.produced).toBeGreaterThan(0);
    expect(sent.produced).toBeLessThan(MAX_IN_FLIGHT);
    uploadReader.req!.resume();
    const res = await pending;
    expect(res.statusCode).toBe(200);
    expect(Number(await res.body.text())).toBe(SIZE);
    const line = await gateway.waitForLog((l) => l.msg === 'request completed' && l.path === '/files/upload');
    expect(line.bytes_in).toBe(SIZE);
  });
});
