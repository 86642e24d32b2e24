import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configFor, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { parseExposition } from '../helpers/exposition.js';
import { send } from '../helpers/http.js';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';

let upstream: TestUpstream;
let gateway: RunningGateway;

const hasPromtool = spawnSync('promtool', ['--version']).status === 0;

beforeAll(async () => {
  upstream = await startUpstream((req, res) => {
    req.resume();
    const status = req.url!.includes('fail') ? 500 : 200;
    res.writeHead(status, { 'content-length': '2' });
    res.end('ok');
  });
  gateway = await startGateway({
    upstreams: { api: { url: upstream.url }, gone: { url: 'http://127.0.0.1:9' } },
    routes: [
      { name: 'api', prefix: '/api', upstream: 'api' },
      { name: 'gone', prefix: '/gone', upstream: 'gone' },
    ],
  });
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
});

async function scrape() {
  const res = await send(`${gateway.url}/metrics`);
  expect(res.status).toBe(200);
  expect(res.headers['content-type']).toContain('text/plain');
  return { text: res.body, families: parseExposition(res.body) };
}

describe('GET /metrics', () => {
  it('exposes valid exposition format with the gateway, upstream, runtime and process families', async () => {
    await send(`${gateway.url}/api/ok`);
    await send(`${gateway.url}/api/fail`);
    await send(`${gateway.url}/gone/x`);
    const { families, text } = await scrape();

    const server = families.get('http_server_request_duration_seconds')!;
    expect(server.type).toBe('histogram');
    const buckets = [...new Set(server.samples.filter((s) => s.name.endsWith('_bucket')).map((s) => s.labels.le))];
    expect(buckets).toEqual(['0.001', '0.0025', '0.005', '0.01', '0.025', '0.05', '0.1', '0.25', '0.5', '1', '2.5', '5', '10', '+Inf']);
    const okCount = server.samples.find((s) => s.name.endsWith('_count') && s.labels.http_route === '/api/*' && s.labels.http_response_status_code === '200')!;
    expect(okCount.labels.http_request_method).toBe('GET');
    expect(okCount.value).toBeGreaterThanOrEqual(1);
    expect(server.samples.some((s) => s.labels.http_route === '/gone/*' && s.labels.http_response_status_code === '502')).toBe(true);

    const client = families.get('http_client_request_duration_seconds')!;
    expect(client.samples.some((s) => s.labels.gateway_upstream === 'api' && s.labels.outcome === '5xx')).toBe(true);
    expect(client.samples.some((s) => s.labels.gateway_upstream === 'gone' && s.labels.outcome === 'connect')).toBe(true);

    const errors = families.get('gateway_upstream_errors_total')!;
    expect(errors.type).toBe('counter');
    expect(errors.samples.find((s) => s.labels.gateway_upstream === 'api' && s.labels.error_type === '5xx')!.value).toBeGreaterThanOrEqual(1);
    expect(errors.samples.find((s) => s.labels.gateway_upstream === 'gone' && s.labels.error_type === 'connect')!.value).toBeGreaterThanOrEqual(1);

    expect(families.get('http_server_active_requests')!.samples[0]!.value).toBe(0);
    const up = families.get('gateway_upstream_up')!;
    expect(up.samples.find((s) => s.labels.gateway_upstream === 'api')!.value).toBe(1);
    expect(up.samples.find((s) => s.labels.gateway_upstream === 'gone')!.value).toBe(0);

    // The event-loop delay gauges are reported once the delay histogram holds 5 samples (10 ms
    // apart) since the last collection; on a fast machine the first scrape can come sooner.
    let runtimeFamilies = families;
    for (let tries = 0; !runtimeFamilies.has('nodejs_eventloop_delay_p99_seconds') && tries < 20; tries++) {
      await new Promise((r) => setTimeout(r, 100));
      runtimeFamilies = (await scrape()).families;
    }
    for (const runtime of [
      'nodejs_eventloop_delay_p99_seconds',
      'nodejs_eventloop_utilization_ratio',
      'v8js_memory_heap_used_bytes',
      'process_cpu_time_seconds_total',
      'process_memory_usage_bytes',
    ]) {
      expect(runtimeFamilies.has(runtime), runtime).toBe(true);
    }
    // One family per name: the exporter's own HTTP calls are not measured as client requests.
    expect(text.match(/^# TYPE http_client_request_duration_seconds /gm)).toHaveLength(1);
  });

  it.runIf(hasPromtool)('passes promtool check metrics', async () => {
    const { text } = await scrape();
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    // Exit 0 means: parses, and no lint findings (counter suffixes, units, help texts).
    expect(result.stderr + result.stdout).toBe('');
    expect(result.status).toBe(0);
  });

  it('keeps a fixed number of series when 10,000 distinct random paths arrive', async () => {
    const series = async () => {
      const { families } = await scrape();
      const keys = new Set<string>();
      for (const f of families.values()) for (const s of f.samples) keys.add(`${s.name}${JSON.stringify(s.labels)}`);
      return keys;
    };
    for (const method of ['GET', 'POST']) {
      await send(`${gateway.url}/nope/warmup`, { method });
      await send(`${gateway.url}/api/warmup`, { method });
    }
    const before = await series();
    const agent = new Agent({ connections: 32 });
    const paths = Array.from({ length: 10_000 }, (_, i) =>
      i % 2 === 0 ? `/api/${randomBytes(8).toString('hex')}?q=${i}` : `/${randomBytes(6).toString('hex')}/${i}`,
    );
    for (let i = 0; i < paths.length; i += 200) {
      await Promise.all(
        paths.slice(i, i + 200).map(async (p) => {
          const res = await request(`${gateway.url}${p}`, { dispatcher: agent, method: i % 400 === 0 ? 'POST' : 'GET' });
          await res.body.dump();
        }),
      );
    }
    await agent.close();
    const after = await series();
    const added = [...after].filter((k) => !before.has(k));
    // Only runtime families may gain a few label values under load (GC kinds, active resource types).
    expect(added.filter((k) => !/^(v8js_|nodejs_)/.test(k))).toEqual([]);
    expect(added.length).toBeLessThan(40);
    const { families } = await scrape();
    const routes = new Set(families.get('http_server_request_duration_seconds')!.samples.map((s) => s.labels.http_route));
    expect([...routes].sort()).toEqual(['/api/*', '/gone/*', undefined].sort());
  });
});
