import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import { parse } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
export const at = (...p: string[]) => join(ROOT, ...p);

/** YAML with merge keys (compose.yaml uses `<<: *anchor`). */
export function readYaml<T = any>(file: string): T {
  return parse(readFileSync(at(file), 'utf8'), { merge: true }) as T;
}

export function readJson<T = any>(file: string): T {
  return JSON.parse(readFileSync(at(file), 'utf8')) as T;
}

export const hasBinary = (bin: string) => spawnSync(bin, ['--version'], { stdio: 'ignore' }).status === 0;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

/** n distinct free ports (all held open together while they are picked). */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Child processes: the compiled demo service and load generator, started as compose runs them.

export interface Child {
  process: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (SIGTERM first, SIGKILL after 5 s). */
  stop(): Promise<number | null>;
  exited: Promise<number | null>;
}

export function spawnNode(script: string, env: Record<string, string>): Child {
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, OTEL_BSP_SCHEDULE_DELAY: '100', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return {
    process: child,
    stdout: () => out,
    stderr: () => err,
    exited,
    stop: () => stopProcess(child, exited),
  };
}

export async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

export interface DemoService extends Child {
  name: string;
  port: number;
  url: string;
}

/** Starts dist/src/demo/service.js on a free 127.0.0.1 port and waits for its "listening" line. */
export async function startDemoService(name: string, env: Record<string, string> = {}, fixedPort?: number): Promise<DemoService> {
  const port = fixedPort ?? (await freePort());
  const child = spawnNode('dist/src/demo/service.js', { OTEL_SERVICE_NAME: name, SERVICE_HOST: '127.0.0.1', SERVICE_PORT: String(port), ...env });
  await waitFor(`demo service ${name} to listen`, () => {
    if (child.process.exitCode !== null) throw new Error(`demo service ${name} exited: ${child.stderr()}`);
    return child.stdout().includes('"demo service listening"') || undefined;
  });
  return { ...child, name, port, url: `http://127.0.0.1:${port}` };
}

// ---------------------------------------------------------------------------------------------
// Dashboards

export interface DashboardQuery {
  dashboard: string;
  panel: string;
  panelType: string;
  refId: string;
  expr: string;
  datasourceUid: string | undefined;
  exemplar: boolean;
}

export function dashboardFiles(): string[] {
  return readdirSync(at('grafana/dashboards'))
    .filter((f) => f.endsWith('.json'))
    .map((f) => `grafana/dashboards/${f}`);
}

export function allPanels(dashboard: any): any[] {
  const out: any[] = [];
  for (const p of dashboard.panels ?? []) {
    out.push(p);
    for (const inner of p.panels ?? []) out.push(inner);
  }
  return out;
}

export function dashboardQueries(file: string): DashboardQuery[] {
  const d = readJson(file);
  const out: DashboardQuery[] = [];
  for (const p of allPanels(d)) {
    for (const t of p.targets ?? []) {
      if (typeof t.expr !== 'string') continue;
      out.push({
        dashboard: d.uid,
        panel: p.title,
        panelType: p.type,
        refId: t.refId,
        expr: t.expr,
        datasourceUid: t.datasource?.uid ?? p.datasource?.uid,
        exemplar: t.exemplar === true,
      });
    }
  }
  return out;
}

/** Grafana's Prometheus escaping for multi-value / include-all variables (prometheusSpecialRegexEscape). */
export function grafanaRegexEscape(value: string): string {
  return value.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
}

/**
 * Substitutes Grafana variables ($x, ${x}, ${x:fmt}, [[x]]) the way Grafana would. An unknown
 * variable throws: a dashboard must only use variables the test knows how to fill.
 */
export function substitute(expr: string, vars: Record<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::[\w]+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (match, a: string | undefined, b: string | undefined, c: string | undefined) => {
    const name = a ?? b ?? c!;
    if (!(name in vars)) throw new Error(`unknown variable ${match} in: ${expr}`);
    return vars[name]!;
  });
}

/** label_values(selector, label) → a PromQL query returning one series per value. */
export function labelValuesQuery(query: string): { expr: string; label: string } {
  const m = /^label_values\((.*),\s*(\w+)\s*\)$/s.exec(query.trim());
  if (!m) throw new Error(`unsupported variable query: ${query}`);
  return { expr: `count by (${m[2]}) (${m[1]})`, label: m[2]! };
}

// ---------------------------------------------------------------------------------------------
// PromQL: the metric names an expression reads (good enough for the expressions in this repo).

const PROMQL_WORDS = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'and', 'or', 'unless', 'offset', 'inf', 'nan',
]);

export function metricNames(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""'); // string literals
  s = s.replace(/\{[^}]*\}/g, ' '); // label matchers
  s = s.replace(/\[[^\]]*\]/g, ' '); // range selectors
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const names = new Set<string>();
  for (const m of s.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?/g)) {
    const word = m[1]!;
    if (m[2]) continue; // a function call
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    if (/^\d/.test(word) || /^(e|s|m|h|d|w|y|ms)$/.test(word)) continue;
    names.add(word);
  }
  return [...names];
}

// ---------------------------------------------------------------------------------------------
// Prometheus

export interface PromResult {
  status: string;
  errorType?: string;
  error?: string;
  data?: { resultType: string; result: Array<{ metric: Record<string, string>; value?: [number, string] }> };
}

export interface RunningPrometheus extends Child {
  url: string;
  port: number;
  query(expr: string): Promise<PromResult>;
  get<T = any>(path: string): Promise<T>;
}

export async function startPrometheus(configFile: string, dataDir: string, port: number): Promise<RunningPrometheus> {
  const child = spawn(
    'prometheus',
    [
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${dataDir}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--enable-feature=exemplar-storage',
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${url}${path}`)).json()) as T;
  await waitFor(
    'prometheus to be ready',
    async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited (${child.exitCode}): ${err}`);
      try {
        return (await fetch(`${url}/-/ready`)).ok || undefined;
      } catch {
        return undefined;
      }
    },
    15_000,
    100,
  );
  return {
    process: child,
    stdout: () => out,
    stderr: () => err,
    exited,
    url,
    port,
    get,
    async query(expr: string) {
      const res = await fetch(`${url}/api/v1/query`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ query: expr }).toString(),
      });
      return (await res.json()) as PromResult;
    },
    stop: () => stopProcess(child, exited),
  };
}

/** SIGTERM, then SIGKILL after 5 s; resolves with the exit code. */
function stopProcess(child: ChildProcess, exited: Promise<number | null>): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
  return exited.finally(() => clearTimeout(timer));
}
