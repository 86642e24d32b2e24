import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { runCli, startAdminGateway, TOKEN, tracedRequest, type AdminGateway } from './helpers.js';

const ANSI = /\x1b\[[0-9;]*m/;
const strip = (text: string): string => text.replace(/\x1b\[[0-9;]*m/g, '');

let upstream: TestUpstream;
let gateway: AdminGateway;
let ok: { traceId: string; requestId: string };
let failed: { traceId: string; requestId: string };
let logFile: string;

beforeAll(async () => {
  upstream = await startUpstream((_req, res) => {
    setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 20);
  });
  gateway = await startAdminGateway([
    { name: 'users', prefix: '/api/users', url: upstream.url },
    { name: 'dead', prefix: '/dead', url: 'http://127.0.0.1:1' },
  ]);
  ok = await tracedRequest(gateway, '/api/users/42', { 'x-request-id': 'cli-ok-1' });
  failed = await tracedRequest(gateway, '/dead/x', { 'x-request-id': 'cli-fail-1' });
  await tracedRequest(gateway, '/api/users/other');
  // The gateway's JSON log lines, as they would be in its log file.
  logFile = join(mkdtempSync(join(tmpdir(), 'gw-logs-')), 'gateway.log');
  writeFileSync(logFile, `${gateway.logs.map((l) => JSON.stringify(l)).join('\n')}\nnot json ${ok.traceId}\n`);
});

afterAll(async () => {
  await gateway?.stop();
  await upstream?.close();
});

const flags = (): string[] => ['--url', gateway.adminUrl, '--token', TOKEN];

describe('tracing-gateway trace <id>', () => {
  it('prints a waterfall: one row per span, indented by depth, a proportional bar, duration and status', async () => {
    const r = await runCli([ok.traceId, ...flags()]);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).not.toMatch(ANSI); // not a terminal, no FORCE_COLOR
    const lines = r.stdout.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^Trace +${ok.traceId} `));
    expect(lines[1]).toMatch(/^Request +GET \/api\/users\/\* \(path \/api\/users\/42\) → 200 ok in [\d.]+ ms, started \d{4}-\d\d-\d\dT.*, request ID cli-ok-1$/);
    expect(lines[2]).toBe('Services tracing-gateway; upstreams: users; 2 spans, 0 with errors');

    const rows = lines.filter((l) => l.includes('│') && !l.includes('SERVICE'));
    expect(rows).toHaveLength(2);
    const [server, client] = rows as [string, string];
    expect(server).toMatch(/^ {2}tracing-gateway GET \/api\/users\/\* \(server\) +│█+│ +[\d.]+ ms 200 ok$/);
    // The CLIENT row is indented one level (two spaces) under the SERVER row.
    expect(client).toMatch(/^ {2}tracing-gateway {3}GET \(client\) +│ *█+ *│ +[\d.]+ ms 200 ok$/);
    const bar = (row: string): string => row.slice(row.indexOf('│') + 1, row.lastIndexOf('│'));
    expect(bar(server).length).toBe(bar(client).length);
    // The server span covers the whole track; the client span (≥ 20 ms of it) a large part, after the start.
    expect(bar(server).trim()).toBe(bar(server));
    const clientCells = bar(client).replace(/ /g, '').length;
    expect(clientCells).toBeGreaterThan(bar(server).length / 3);
    expect(clientCells).toBeLessThanOrEqual(bar(server).length);
    expect(r.stdout).not.toContain('Failed');
  });

  it('highlights errors: ✖ marker, ERROR status, the error under the row, red only with FORCE_COLOR', async () => {
    const plain = await runCli([failed.traceId, ...flags()]);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^Failed +tracing-gateway › GET \(client\): connect ECONNREFUSED 127\.0\.0\.1:1$/m);
    expect(plain.stdout).toMatch(/^✖ tracing-gateway GET \/dead\/\* \(server\) .* 502 ERROR$/m);
    expect(plain.stdout).toMatch(/^✖ tracing-gateway {3}GET \(client\) .* ERROR$/m);
    expect(plain.stdout).toMatch(/^ +↳ connect ECONNREFUSED 127\.0\.0\.1:1$/m);
    expect(plain.stdout).not.toMatch(ANSI);

    const colored = await runCli([failed.traceId, ...flags()], { FORCE_COLOR: '1' });
    expect(colored.code).toBe(0);
    expect(colored.stdout).toContain('\x1b[31m✖ \x1b[0m');
    expect(colored.stdout).toContain('\x1b[31m502 ERROR\x1b[0m');
    expect(strip(colored.stdout)).toBe(plain.stdout);
  });

  it('takes a request ID too, and the URL and token from GATEWAY_ADMIN_URL / GATEWAY_ADMIN_TOKEN', async () => {
    const r = await runCli(['cli-ok-1'], { GATEWAY_ADMIN_URL: `${gateway.adminUrl}/`, GATEWAY_ADMIN_TOKEN: TOKEN });
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n')[0]).toContain(ok.traceId);
  });

  it('--logs prints the gateway JSON log lines of that trace, and only those', async () => {
    const r = await runCli([failed.traceId, ...flags(), '--logs', logFile]);
    expect(r.code).toBe(0);
    const tail = r.stdout.slice(r.stdout.indexOf(`\nLog lines in ${logFile}: `));
    const printed = tail.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
    const expected = gateway.logs.filter((l) => l.trace_id === failed.traceId);
    expect(tail).toContain(`: ${expected.length}\n`);
    expect(printed).toEqual(expected);
    expect(printed.some((l) => l.msg === 'request completed' && l.status === 502)).toBe(true);
  });

  it('--json prints the API summary', async () => {
    const r = await runCli([ok.requestId, ...flags(), '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ traceId: ok.traceId, spanCount: 2 });
  });

  it('exit 1 for an unknown trace, with the likely reasons; --logs still searches the file', async () => {
    const r = await runCli(['4bf92f3577b34da6a3ce929d0e0e4736', ...flags(), '--logs', logFile]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/no spans of trace 4bf92f3577b34da6a3ce929d0e0e4736/);
    expect(r.stderr).toMatch(/Likely reasons:\n {2}- .*not sampled/);
    expect(r.stdout).toContain(': 0\n');
  });

  it('exit 1 for a wrong token or an unreachable admin API; the token is never printed', async () => {
    const wrong = await runCli([ok.traceId, '--url', gateway.adminUrl, '--token', 'wrong-token-0123456789']);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('Authorization: Bearer');
    expect(wrong.stderr + wrong.stdout).not.toContain('wrong-token-0123456789');
    const down = await runCli([ok.traceId, '--url', 'http://127.0.0.1:1', '--token', TOKEN]);
    expect(down.code).toBe(1);
    expect(down.stderr).toMatch(/cannot reach the admin API at http:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  });

  it('exit 2 for usage errors: no ID, two IDs, unknown flag, no token, malformed ID', async () => {
    // One CLI process at a time: the suite shares two cores with latency-sensitive tests.
    for (const args of [[], ['a', 'b'], ['a', '--bogus']]) {
      const r = await runCli([...args, ...flags()]);
      expect(r.code, args.join(' ')).toBe(2);
      expect(r.stderr).toContain('usage: tracing-gateway trace');
    }
    const noToken = await runCli([ok.traceId, '--url', gateway.adminUrl]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('no admin token');
    const malformed = await runCli(['not an id!', ...flags()]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('32 hexadecimal characters');
  });

  it('--help prints the usage and exits 0 without starting a gateway', async () => {
    const r = await runCli(['--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('exit status: 0 found, 1 not found or failed, 2 usage error');
  });
});
