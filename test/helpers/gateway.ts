import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');

export interface LogLine {
  level: string;
  msg: string;
  trace_id?: string;
  span_id?: string;
  request_id?: string;
  trace_flags?: string;
  [key: string]: unknown;
}

export interface RunningGateway {
  url: string;
  port: number;
  process: ChildProcess;
  /** Every JSON line the gateway wrote to stdout so far. */
  logs: LogLine[];
  stderr: () => string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends a signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function writeConfig(config: unknown): string {
  const dir = mkdtempSync(join(tmpdir(), 'gw-config-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(file, stringify(config));
  return file;
}

/**
 * Starts the compiled gateway exactly as the README does:
 * `node --import ./dist/src/telemetry/register.js dist/src/main.js --config FILE`.
 */
export async function startGateway(config: unknown, env: Record<string, string> = {}): Promise<RunningGateway> {
  const file = writeConfig(config);
  const child = spawn(process.execPath, ['--import', './dist/src/telemetry/register.js', 'dist/src/main.js', '--config', file], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, GATEWAY_PORT: '0', GATEWAY_HOST: '127.0.0.1', OTEL_BSP_SCHEDULE_DELAY: '100', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: LogLine[] = [];
  let stderr = '';
  let buffered = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) !== -1) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line.trim()) logs.push(JSON.parse(line) as LogLine);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  async function waitForLog(predicate: (line: LogLine) => boolean, timeoutMs = 10_000): Promise<LogLine> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = logs.find(predicate);
      if (found) return found;
      if (child.exitCode !== null) throw new Error(`gateway exited (${child.exitCode}): ${stderr}`);
      if (Date.now() > deadline) throw new Error(`log line not seen within ${timeoutMs} ms; stderr: ${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const ready = await waitForLog((l) => l.msg === 'gateway listening', 15_000);
  const port = Number(String(ready.address).split(':').pop());
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    logs,
    stderr: () => stderr,
    waitForLog,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** A minimal valid config with one route per upstream URL given. */
export function configFor(routes: Array<{ name: string; prefix: string; url: string; [k: string]: unknown }>, extra: Record<string, unknown> = {}) {
  const upstreams: Record<string, { url: string }> = {};
  for (const r of routes) upstreams[r.name] = { url: r.url };
  return {
    ...extra,
    upstreams,
    routes: routes.map(({ url: _url, ...r }) => ({ upstream: r.name, ...r })),
  };
}
