/**
 * End to end against a real Prometheus (Debian's /usr/bin/prometheus): the real gateway in front
 * of the real demo services (the compose topology users → orders → inventory, from
 * stack/gateway.yaml), real traffic from the real load generator plus a fixed set of requests
 * that covers every outcome, and a Prometheus whose configuration is derived from
 * prometheus/prometheus.yml (same jobs and rule files, targets rewritten to 127.0.0.1, 1 s scrape
 * interval). Then every PromQL expression of every dashboard and every alert is evaluated through
 * Prometheus's HTTP API: none may error, and every query fed by the gateway or the demo services
 * must return data. The collector and Tempo cannot run here; their scrape targets point at closed
 * ports, and the panels they alone feed are listed in EXPECTED_EMPTY with the reason.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send } from '../helpers/http.js';
import {
  at,
  dashboardFiles,
  dashboardQueries,
  freePorts,
  grafanaRegexEscape,
  hasBinary,
  labelValuesQuery,
  metricNames,
  readJson,
  readYaml,
  sleep,
  spawnNode,
  startDemoService,
  startPrometheus,
  substitute,
  waitFor,
  type Child,
  type DemoService,
  type PromResult,
  type RunningPrometheus,
} from './helpers.js';

const canRun = hasBinary('prometheus');
if (!canRun) console.warn('test/stack/prometheus-e2e: SKIPPED — /usr/bin/prometheus not found (Debian package "prometheus"; .ci/run installs it)');

/** Metrics that only the collector (span_metrics/service_graph connectors, self-metrics) or Tempo produce. */
const PIPELINE_ONLY = /^(otelcol_|tempo_|traces_span_metrics_|traces_service_graph_)/;

/** Panels whose data comes only from the collector or Tempo, which do not run in this test. */
const EXPECTED_EMPTY: Array<{ dashboard: string; panel: string; refIds: string[]; reason: string }> = [
  { dashboard: 'gateway-overview', panel: 'Latency (p50 / p95 / p99)', refIds: ['D'], reason: 'p99 from span metrics (collector span_metrics connector), the series with exemplars' },
  { dashboard: 'gateway-upstreams', panel: 'Service graph: requests between services', refIds: ['A', 'B'], reason: 'collector service_graph connector' },
  { dashboard: 'telemetry-pipeline', panel: 'Spans accepted', refIds: ['A'], reason: 'collector self-metrics' },
  { dashboard: 'telemetry-pipeline', panel: 'Spans refused', refIds: ['A'], reason: 'collector self-metrics' },
  { dashboard: 'telemetry-pipeline', panel: 'Spans to Tempo: sent, failed, dropped', refIds: ['A', 'B', 'C'], reason: 'collector self-metrics' },
  { dashboard: 'telemetry-pipeline', panel: 'Exporter queue fill', refIds: ['A'], reason: 'collector self-metrics' },
  { dashboard: 'telemetry-pipeline', panel: 'Collector memory (RSS)', refIds: ['A'], reason: 'collector self-metrics' },
  { dashboard: 'telemetry-pipeline', panel: 'Span metrics: calls by service', refIds: ['A'], reason: 'collector span_metrics connector' },
  { dashboard: 'telemetry-pipeline', panel: 'Tempo: spans received', refIds: ['A'], reason: "Tempo's own metrics" },
  { dashboard: 'telemetry-pipeline', panel: 'Tempo: spans discarded', refIds: ['A'], reason: "Tempo's own metrics" },
];
const expectedEmpty = (q: { dashboard: string; panel: string; refId: string }) =>
  EXPECTED_EMPTY.some((e) => e.dashboard === q.dashboard && e.panel === q.panel && e.refIds.includes(q.refId));

/** $__rate_interval etc. as Grafana would set them for a 1 s scrape interval (at least 4 scrapes). */
const BUILTINS = { __rate_interval: '15s', __interval: '2s', __range: '1m' };
const ALL = { ...BUILTINS, instance: '.*', route: '.*', upstream: '.*', job: '.*' };

let services: DemoService[] = [];
let gateway: RunningGateway | undefined;
let prometheus: RunningPrometheus | undefined;
let loadgen: Child | undefined;
let stopTraffic = false;
let trafficLoop: Promise<void> | undefined;
const tmpDirs: string[] = [];
const deadPorts: Record<string, number> = {};

const trafficProblems: string[] = [];

/**
 * One request of every kind the dashboards break down: 2xx, 404, passed-through 503, 504 timeout,
 * 502 connect error (503 once the gateway's circuit breaker opens for that upstream), slow.
 * Returns the requests that did not get the expected status.
 */
async function fixedTraffic(base: string): Promise<string[]> {
  const paths: Array<[string, string, number[]]> = [
    ['GET', '/api/users/42', [200]],
    ['GET', '/api/orders/7', [200]],
    ['POST', '/api/orders', [200]],
    ['GET', '/api/inventory/items/3', [200]],
    ['GET', '/api/users/slow?ms=120', [200]],
    ['GET', '/api/users/status/503', [503]],
    ['GET', '/api/orders/status/503', [503]],
    ['GET', '/nowhere/at/all', [404]],
    // The orders route times out after 500 ms here (undici's timers fire up to ~1 s late).
    ['GET', '/api/orders/slow?ms=2500', [504]],
    // Nothing listens behind "ghost".
    ['GET', '/api/ghost/x', [502, 503]],
  ];
  const results = await Promise.all(paths.map(([method, path]) => send(`${base}${path}`, { method, body: method === 'POST' ? '{"item":1}' : undefined })));
  return results.flatMap((r, i) => (paths[i]![2].includes(r.status) ? [] : [`${paths[i]![0]} ${paths[i]![1]}: ${r.status} ${r.body.slice(0, 200)}`]));
}

beforeAll(async () => {
  if (!canRun) return;
  // The compose topology: users → orders → inventory, with the error and slow rates at 0 so the
  // fixed requests decide what each series shows.
  // Distinct ports for everything, picked together: demo services, the dead upstream, Prometheus,
  // and the closed ports that stand in for the collector and Tempo.
  const [pInventory, pOrders, pUsers, pGhost, promPort, pCollectorSelf, pCollectorExporter, pTempo] = (await freePorts(8)) as number[] as [number, number, number, number, number, number, number, number];
  Object.assign(deadPorts, { ghost: pGhost, 'collector-self': pCollectorSelf, 'collector-exporter': pCollectorExporter, tempo: pTempo });
  services = await Promise.all([
    startDemoService('inventory', {}, pInventory),
    startDemoService('orders', { DOWNSTREAM_URLS: `http://127.0.0.1:${pInventory}` }, pOrders),
    startDemoService('users', { DOWNSTREAM_URLS: `http://127.0.0.1:${pOrders}` }, pUsers),
  ]);

  // The compose gateway config with the upstreams on 127.0.0.1, plus one upstream nobody serves.
  const config = readYaml('stack/gateway.yaml');
  for (const s of services) config.upstreams[s.name].url = s.url;
  config.upstreams.ghost = { url: `http://127.0.0.1:${deadPorts.ghost}`, healthPath: '/health', connectTimeoutMs: 500 };
  config.routes.push({ name: 'ghost', prefix: '/api/ghost', upstream: 'ghost', stripPrefix: true, timeoutMs: 1000 });
  config.routes.find((r: { name: string }) => r.name === 'orders').timeoutMs = 500;
  config.health = { intervalMs: 1000, timeoutMs: 500 };
  gateway = await startGateway(config);
  trafficProblems.push(...(await fixedTraffic(gateway.url)));

  // Prometheus with the repository's configuration: same jobs and rule files, local targets.
  const targets: Record<string, string> = {
    'localhost:9090': `127.0.0.1:${promPort}`,
    'gateway:8080': `127.0.0.1:${gateway.port}`,
    ...Object.fromEntries(services.map((s) => [`${s.name}:8080`, `127.0.0.1:${s.port}`])),
    // The collector and Tempo do not run here: their targets are down, which the alerts must see.
    'otel-collector:8888': `127.0.0.1:${deadPorts['collector-self']}`,
    'otel-collector:8889': `127.0.0.1:${deadPorts['collector-exporter']}`,
    'tempo:3200': `127.0.0.1:${deadPorts.tempo}`,
  };
  const promConfig = readYaml('prometheus/prometheus.yml');
  promConfig.global = { ...promConfig.global, scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '1s' };
  promConfig.rule_files = promConfig.rule_files.map((f: string) => at('prometheus', f));
  for (const job of promConfig.scrape_configs) {
    for (const sc of job.static_configs) {
      sc.targets = sc.targets.map((t: string) => {
        if (!(t in targets)) throw new Error(`prometheus.yml target ${t} (job ${job.job_name}) has no local mapping in this test`);
        return targets[t];
      });
    }
  }
  const dir = mkdtempSync(join(tmpdir(), 'stack-prom-'));
  tmpDirs.push(dir);
  writeFileSync(join(dir, 'prometheus.yml'), stringify(promConfig));
  prometheus = await startPrometheus(join(dir, 'prometheus.yml'), join(dir, 'data'), promPort);
  const started = Date.now();

  // Steady mixed traffic from the real load generator, plus the fixed set every 3 s.
  loadgen = spawnNode('dist/src/demo/loadgen.js', {
    TARGET_URL: gateway.url,
    RATE: '25',
    SLOW_MS: '150',
    TIMEOUT_PROBE_MS: '2500',
    REPORT_EVERY_S: '60',
  });
  trafficLoop = (async () => {
    for (let i = 0; i < 20 && !stopTraffic; i++) {
      await sleep(3_000);
      if (!stopTraffic) trafficProblems.push(...(await fixedTraffic(gateway!.url)));
    }
  })();

  // Enough scrapes for [15s] rate windows to hold every series several times.
  await waitFor(
    'prometheus to have scraped the gateway for 16 s',
    async () => {
      if (Date.now() - started < 16_000) return undefined;
      const r = await prometheus!.query('count_over_time(up{job="gateway"}[30s]) >= 14');
      return (r.data?.result.length ?? 0) > 0 || undefined;
    },
    30_000,
    500,
  );
}, 60_000);

afterAll(async () => {
  stopTraffic = true;
  await trafficLoop?.catch(() => undefined);
  await loadgen?.stop();
  await prometheus?.stop();
  await gateway?.stop();
  await Promise.all(services.map((s) => s.stop()));
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
}, 30_000);

async function evaluate(expr: string): Promise<PromResult> {
  const r = await prometheus!.query(expr);
  return r;
}

describe.skipIf(!canRun)('Prometheus with the stack configuration, scraping the real gateway and demo services', () => {
  it('scrapes the gateway, the demo services and itself; the collector and Tempo targets are down here', async () => {
    const res = await prometheus!.get<{ data: { activeTargets: Array<{ labels: Record<string, string>; health: string; lastError: string }> } }>('/api/v1/targets');
    const byJob = new Map<string, string[]>();
    for (const t of res.data.activeTargets) byJob.set(t.labels.job!, [...(byJob.get(t.labels.job!) ?? []), t.health]);
    expect(byJob.get('gateway')).toEqual(['up']);
    expect(byJob.get('prometheus')).toEqual(['up']);
    expect(byJob.get('demo-services')).toEqual(['up', 'up', 'up']);
    for (const job of ['otel-collector', 'otel-collector-spanmetrics', 'tempo']) expect(byJob.get(job)).toEqual(['down']);
  });

  it('the load generator ran, and the fixed requests got the expected answers', async () => {
    expect(loadgen!.process.exitCode).toBeNull();
    expect(trafficProblems).toEqual([]);
    const r = await evaluate('sum by (http_response_status_code) (http_server_request_duration_seconds_count{job="gateway"})');
    const codes = r.data!.result.map((s) => s.metric.http_response_status_code).sort();
    expect(codes).toEqual(expect.arrayContaining(['200', '404', '502', '503', '504']));
  });

  it('every dashboard query evaluates without error, and every query fed by the gateway or the demo services returns data', async () => {
    const problems: string[] = [];
    let count = 0;
    for (const file of dashboardFiles()) {
      for (const q of dashboardQueries(file)) {
        count++;
        const expr = substitute(q.expr, ALL);
        const r = await evaluate(expr);
        const where = `${q.dashboard} / "${q.panel}" / ${q.refId}`;
        if (r.status !== 'success') problems.push(`${where}: ${r.errorType}: ${r.error}\n    ${expr}`);
        else if (r.data!.result.length === 0 && !expectedEmpty(q)) problems.push(`${where}: no data\n    ${expr}`);
      }
    }
    expect(count).toBeGreaterThan(40);
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('the same queries return data with one route, instance, upstream and job selected (Grafana regex-escapes the values)', async () => {
    const route = '/api/orders/*';
    const concrete = {
      ...BUILTINS,
      route: grafanaRegexEscape(route),
      instance: grafanaRegexEscape(`127.0.0.1:${gateway!.port}`),
      upstream: grafanaRegexEscape('orders'),
      job: grafanaRegexEscape('gateway'),
    };
    // The escaped value must select exactly the route, not every string the unescaped regex matches.
    const check = await evaluate(substitute('count by (http_route) (http_server_request_duration_seconds_count{http_route=~"$route"})', concrete));
    expect(check.data!.result.map((s) => s.metric.http_route)).toEqual([route]);
    const problems: string[] = [];
    for (const file of dashboardFiles()) {
      for (const q of dashboardQueries(file)) {
        if (!/\$(\{)?(route|instance|upstream|job)\b/.test(q.expr)) continue;
        const r = await evaluate(substitute(q.expr, concrete));
        const where = `${q.dashboard} / "${q.panel}" / ${q.refId}`;
        if (r.status !== 'success') problems.push(`${where}: ${r.error}`);
        else if (r.data!.result.length === 0 && !expectedEmpty(q)) problems.push(`${where}: no data`);
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });

  it('the expected-empty list is exact: every entry is a real query that reads only collector or Tempo metrics', () => {
    const all = dashboardFiles().flatMap(dashboardQueries);
    for (const e of EXPECTED_EMPTY) {
      for (const refId of e.refIds) {
        const q = all.find((x) => x.dashboard === e.dashboard && x.panel === e.panel && x.refId === refId);
        expect(q, `${e.dashboard} / ${e.panel} / ${refId} exists`).toBeDefined();
        const names = metricNames(substitute(q!.expr, ALL));
        expect(names.length).toBeGreaterThan(0);
        for (const n of names) expect(n, `${e.panel}: only collector/Tempo metrics may be expected empty`).toMatch(PIPELINE_ONLY);
      }
    }
  });

  it('the template variables list values from real series', async () => {
    const expected: Record<string, string[]> = {
      'gateway-overview/instance': [`127.0.0.1:${gateway!.port}`],
      'gateway-overview/route': ['/api/users/*', '/api/orders/*', '/api/inventory/*'],
      'gateway-upstreams/upstream': ['users', 'orders', 'inventory', 'ghost'],
      'nodejs-runtime/job': ['gateway', 'demo-services'],
    };
    let checked = 0;
    for (const file of dashboardFiles()) {
      const d = readJson(file);
      for (const v of d.templating.list) {
        if (v.type !== 'query') continue;
        const { expr, label } = labelValuesQuery(substitute(v.query, ALL));
        const r = await evaluate(expr);
        expect(r.status, `${d.uid} $${v.name}: ${r.error}`).toBe('success');
        const values = r.data!.result.map((s) => s.metric[label]);
        expect(values.length, `${d.uid} $${v.name} has values`).toBeGreaterThan(0);
        const want = expected[`${d.uid}/${v.name}`];
        if (want) expect(values).toEqual(expect.arrayContaining(want));
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(6);
  });

  it("the Tempo datasource's trace-to-metrics queries are valid PromQL", async () => {
    const ds = readYaml('grafana/provisioning/datasources/datasources.yaml');
    const tempo = ds.datasources.find((d: { type: string }) => d.type === 'tempo');
    const queries: string[] = tempo.jsonData.tracesToMetrics.queries.map((q: { query: string }) => q.query);
    expect(queries.length).toBeGreaterThan(0);
    for (const q of queries) {
      // Provisioning turns $$ into $; Grafana then expands $__tags from the span.
      const expr = q.replace(/\$\$/g, '$').replace('$__tags', 'service_name="tracing-gateway"');
      const r = await evaluate(expr);
      expect(r.status, `${q}: ${r.error}`).toBe('success');
    }
  });

  it('every alert rule loads and evaluates without error, and every alert expression runs', async () => {
    const res = await prometheus!.get<{ data: { groups: Array<{ rules: Array<{ name: string; type: string; health: string; lastError?: string; query: string }> }> } }>('/api/v1/rules');
    const rules = res.data.groups.flatMap((g) => g.rules);
    const fileAlerts = ['gateway.yml', 'telemetry.yml'].flatMap((f) => readYaml(`prometheus/rules/${f}`).groups.flatMap((g: { rules: Array<{ alert?: string }> }) => g.rules));
    expect(rules.length).toBe(fileAlerts.length);
    for (const r of rules) expect(`${r.name}: ${r.health} ${r.lastError ?? ''}`.trim()).toBe(`${r.name}: ok`);
    for (const r of rules) {
      const out = await evaluate(r.query);
      expect(out.status, `${r.name}: ${out.error}`).toBe('success');
    }
  });

  it('the alert expressions see the real failures of this run', async () => {
    const rules = new Map<string, string>();
    for (const f of ['gateway.yml', 'telemetry.yml']) for (const g of readYaml(`prometheus/rules/${f}`).groups) for (const r of g.rules) rules.set(r.alert, r.expr);
    const labelsOf = async (alert: string, label: string) => (await evaluate(rules.get(alert)!)).data!.result.map((s) => s.metric[label]).sort();
    // Nothing listens behind "ghost": its health check fails and every call is a connect error.
    await waitFor('the ghost upstream to be marked down', async () => ((await labelsOf('GatewayUpstreamDown', 'gateway_upstream')).includes('ghost') ? true : undefined), 5_000, 200);
    expect(await labelsOf('GatewayUpstreamDown', 'gateway_upstream')).toEqual(['ghost']);
    expect(await labelsOf('GatewayUpstreamFailing', 'gateway_upstream')).toContain('ghost');
    expect(await labelsOf('OtelCollectorDown', 'job')).toEqual(['otel-collector']);
    // The collector's self-metrics target is left to OtelCollectorDown.
    expect(await labelsOf('ScrapeTargetDown', 'job')).toEqual(['otel-collector-spanmetrics', 'tempo']);
  });

  it('the metrics and labels that alerts and their unit tests use are the ones the gateway and the demo services export', async () => {
    const series = async (name: string) => prometheus!.get<{ data: Array<Record<string, string>> }>(`/api/v1/series?match[]=${encodeURIComponent(`{__name__="${name}"}`)}`);
    const problems: string[] = [];
    const exprs: string[] = [];
    for (const f of ['gateway.yml', 'telemetry.yml']) for (const g of readYaml(`prometheus/rules/${f}`).groups) for (const r of g.rules) exprs.push(r.expr);
    for (const name of new Set(exprs.flatMap(metricNames))) {
      if (PIPELINE_ONLY.test(name)) continue;
      if ((await series(name)).data.length === 0) problems.push(`alert metric ${name} is not exported`);
    }
    // promtool tests invent series; their names and label names must exist for real.
    for (const f of ['gateway_test.yml', 'telemetry_test.yml']) {
      const doc = parse(readFileSync(at('prometheus/tests', f), 'utf8'));
      for (const t of doc.tests) {
        for (const s of t.input_series) {
          const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\}$/.exec(s.series)!;
          const name = m[1]!;
          if (PIPELINE_ONLY.test(name)) continue;
          const labels = [...m[2]!.matchAll(/(\w+)="/g)].map((x) => x[1]!);
          const real = (await series(name)).data;
          if (real.length === 0) {
            problems.push(`${f}: ${name} is not exported`);
            continue;
          }
          const known = new Set(real.flatMap((r) => Object.keys(r)));
          for (const l of labels) if (!known.has(l)) problems.push(`${f}: ${name} has no label ${l} (real labels: ${[...known].join(', ')})`);
        }
      }
    }
    expect(problems, problems.join('\n')).toEqual([]);
  });
});
