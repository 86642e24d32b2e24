import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startUpstream, type TestUpstream } from '../helpers/upstream.js';
import { startAdminGateway, TOKEN, tracedRequest, type AdminGateway } from './helpers.js';

// Debian's chromium (installed by CI); never a downloaded browser build.
const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.warn(`page.test.ts: SKIPPED, ${CHROMIUM} is missing (apt-get install chromium)`);

describe.skipIf(!haveChromium)(`the lookup page in headless Chromium (${CHROMIUM})`, () => {
  let upstream: TestUpstream;
  let gateway: AdminGateway;
  let context: BrowserContext;
  let page: Page;
  let profile: string;
  const cspViolations: string[] = [];

  beforeAll(async () => {
    upstream = await startUpstream((_req, res) => {
      setTimeout(() => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'), 20);
    });
    gateway = await startAdminGateway(
      [
        { name: 'users', prefix: '/api/users', url: upstream.url },
        { name: 'dead', prefix: '/dead', url: 'http://127.0.0.1:1' },
      ],
      { grafanaUrl: 'http://grafana.example:3000' },
    );
    profile = mkdtempSync(join(tmpdir(), 'gw-chromium-'));
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    // Bounded: a stuck page fails the test in seconds, well within vitest's own timeout.
    context.setDefaultTimeout(10_000);
    page = context.pages()[0] ?? (await context.newPage());
    page.on('console', (msg) => {
      if (/Content Security Policy/i.test(msg.text())) cspViolations.push(msg.text());
    });
  }, 60_000);

  afterAll(async () => {
    await context?.close();
    await gateway?.stop();
    await upstream?.close();
    if (profile) rmSync(profile, { recursive: true, force: true });
  });

  async function lookUp(id: string, token = TOKEN): Promise<void> {
    await page.fill('#token', token);
    await page.fill('#id', id);
    await page.click('#submit');
  }

  it('looks up a real trace ID and shows the waterfall with the gateway SERVER and CLIENT spans', async () => {
    const { traceId, requestId } = await tracedRequest(gateway, '/api/users/42');
    await page.goto(`${gateway.adminUrl}/admin/`);
    await lookUp(traceId);
    await page.waitForSelector('#waterfall .row.span');

    const rows = await page.$$eval('#waterfall .row.span', (els) =>
      els.map((e) => ({
        kind: (e as HTMLElement).dataset.kind,
        depth: (e as HTMLElement).dataset.depth,
        text: (e as HTMLElement).innerText,
        left: parseFloat((e.querySelector('.bar') as HTMLElement).style.left),
        width: parseFloat((e.querySelector('.bar') as HTMLElement).style.width),
      })),
    );
    expect(rows.map((r) => [r.kind, r.depth])).toEqual([
      ['SERVER', '0'],
      ['CLIENT', '1'],
    ]);
    expect(rows[0]!.text).toContain('GET /api/users/*');
    expect(rows[0]!.text).toContain('tracing-gateway');
    expect(rows[0]!.text).toContain('200 ok');
    expect(rows[0]!.width).toBeCloseTo(100, 0);
    // The upstream call starts after the server span and ends within it.
    expect(rows[1]!.left).toBeGreaterThan(0);
    expect(rows[1]!.left + rows[1]!.width).toBeLessThanOrEqual(100.01);

    const summary = await page.innerText('#summary');
    expect(summary).toContain(traceId);
    expect(summary).toContain(requestId);
    expect(summary).toMatch(/Outcome\s+200 ok/);
    expect(await page.isHidden('#message')).toBe(true);

    // Span details on click.
    await page.click('#waterfall .row.span[data-kind="CLIENT"]');
    const details = await page.innerText('#details');
    expect(details).toContain('url.full');
    expect(details).toContain('/api/users/42');

    // A copyable Grafana link.
    const link = await page.inputValue('#grafana-url');
    expect(link.startsWith('http://grafana.example:3000/explore?schemaVersion=1&panes=')).toBe(true);
    expect(decodeURIComponent(link)).toContain(traceId);
    await page.click('#copy');
    await page.waitForFunction(() => document.getElementById('copy')!.textContent === 'Copied');

    // The ID is in the URL to share; the token is not.
    expect(page.url()).toContain(`#id=${traceId}`);
    expect(page.url()).not.toContain(TOKEN);
    expect(cspViolations).toEqual([]);
  });

  it('highlights a failed span and its error; a request ID works as well', async () => {
    const { requestId } = await tracedRequest(gateway, '/dead/x', { 'x-request-id': 'page-fail-1' });
    await page.goto(`${gateway.adminUrl}/admin/`);
    await lookUp(requestId);
    await page.waitForSelector('#waterfall .row.span.error');
    const errors = await page.$$eval('#waterfall .row.span.error', (els) => els.map((e) => (e as HTMLElement).innerText));
    expect(errors).toHaveLength(2);
    expect(errors[1]).toContain('ECONNREFUSED');
    expect(await page.innerText('#summary')).toMatch(/Failed at\s+tracing-gateway › GET \(client\): connect ECONNREFUSED/);
  });

  it('says what is wrong for a wrong token, a malformed ID and an unknown trace', async () => {
    await page.goto(`${gateway.adminUrl}/admin/`);
    await lookUp('4bf92f3577b34da6a3ce929d0e0e4736', 'not-the-token-000000');
    await page.waitForSelector('#message.error');
    expect(await page.innerText('#message')).toContain('Authorization: Bearer');
    expect(await page.isHidden('#result')).toBe(true);

    await lookUp('<img src=x onerror=alert(1)>');
    await page.waitForFunction(() => document.getElementById('message')!.textContent!.includes('hexadecimal'));
    expect(await page.$$('#message img')).toHaveLength(0);

    await lookUp('4bf92f3577b34da6a3ce929d0e0e4736');
    await page.waitForFunction(() => document.getElementById('message')!.textContent!.includes('no spans of trace'));
    expect(await page.innerText('#reasons')).toContain('not sampled');
  });

  it('a shared #id= link looks the trace up at once when the tab already has the token', async () => {
    const { traceId } = await tracedRequest(gateway, '/api/users/7');
    await page.goto('about:blank');
    await page.goto(`${gateway.adminUrl}/admin/#id=${traceId}`);
    await page.waitForSelector('#waterfall .row.span');
    expect(await page.innerText('#summary')).toContain(traceId);
    // Editing the hash of an open page looks up the new ID too.
    const other = await tracedRequest(gateway, '/api/users/8');
    await page.evaluate((id) => (location.hash = `id=${id}`), other.traceId);
    await page.waitForFunction((id) => document.getElementById('summary')!.textContent!.includes(id), other.traceId);
    await page.click('#forget');
    expect(await page.evaluate(() => sessionStorage.length)).toBe(0);
  });
});
