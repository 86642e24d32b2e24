import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { isValidRequestId, normalizeTraceId } from '../lookup/ids.js';
import type { TraceSummary } from '../lookup/summary.js';
import { renderTrace } from './waterfall.js';

const USAGE = `usage: tracing-gateway trace <traceId|requestId> [--url URL] [--token TOKEN] [--logs FILE] [--json]
  Prints the trace as a waterfall: one row per span, indented by depth, with a bar, duration and status.
  --url URL     the gateway's admin listener (default: $GATEWAY_ADMIN_URL or http://127.0.0.1:9901)
  --token TOKEN the admin token (default: $GATEWAY_ADMIN_TOKEN; prefer the variable, flags show in ps)
  --logs FILE   also print the gateway's JSON log lines of this trace from FILE
  --json        print the admin API's JSON summary instead
exit status: 0 found, 1 not found or failed, 2 usage error
`;

export interface CliIo {
  stdout: NodeJS.WriteStream;
  stderr: NodeJS.WriteStream;
  env: NodeJS.ProcessEnv;
}

interface ErrorBody {
  error?: string;
  message?: string;
  reasons?: string[];
}

/** Colour for a terminal, or when FORCE_COLOR asks for it; NO_COLOR turns it off. */
export function useColor(stream: { isTTY?: boolean }, env: NodeJS.ProcessEnv): boolean {
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0' && env.FORCE_COLOR !== 'false') return true;
  if (env.NO_COLOR) return false;
  return stream.isTTY === true;
}

/** JSON log lines whose trace_id or request_id match, streamed (log files can be large). */
async function matchingLogLines(file: string, traceId: string | undefined, requestId: string | undefined): Promise<string[]> {
  const lines: string[] = [];
  const input = createReadStream(file, 'utf8');
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', reject);
  });
  await opened;
  for await (const line of createInterface({ input, crlfDelay: Infinity })) {
    // Cheap substring test first: most lines belong to other requests.
    if (!((traceId && line.includes(traceId)) || (requestId && line.includes(requestId)))) continue;
    try {
      const entry = JSON.parse(line) as { trace_id?: unknown; request_id?: unknown };
      if ((traceId && entry.trace_id === traceId) || (requestId && entry.request_id === requestId)) lines.push(line);
    } catch {
      // not a JSON line
    }
  }
  return lines;
}

async function flush(stream: NodeJS.WriteStream): Promise<void> {
  await new Promise<void>((resolve) => stream.write('', () => resolve()));
}

/** `tracing-gateway trace …`; resolves with the exit status. */
export async function runTraceCommand(argv: string[], io: CliIo = { stdout: process.stdout, stderr: process.stderr, env: process.env }): Promise<number> {
  const { stdout, stderr, env } = io;
  const code = await run();
  await flush(stdout);
  await flush(stderr);
  return code;

  async function run(): Promise<number> {
    let parsed;
    try {
      parsed = parseArgs({
        args: argv,
        allowPositionals: true,
        options: {
          url: { type: 'string' },
          token: { type: 'string' },
          logs: { type: 'string' },
          json: { type: 'boolean', default: false },
          help: { type: 'boolean', short: 'h', default: false },
        },
      });
    } catch (err) {
      stderr.write(`tracing-gateway trace: ${(err as Error).message}\n${USAGE}`);
      return 2;
    }
    const { values, positionals } = parsed;
    if (values.help) {
      stdout.write(USAGE);
      return 0;
    }
    if (positionals.length !== 1 || !positionals[0]!.trim()) {
      stderr.write(`tracing-gateway trace: expected exactly one trace ID or request ID\n${USAGE}`);
      return 2;
    }
    const id = positionals[0]!.trim();
    const base = (values.url ?? env.GATEWAY_ADMIN_URL ?? 'http://127.0.0.1:9901').replace(/\/+$/, '');
    if (!URL.canParse(base) || !/^https?:$/.test(new URL(base).protocol)) {
      stderr.write(`tracing-gateway trace: --url must be an http(s) URL, got "${base}"\n`);
      return 2;
    }
    const token = values.token ?? env.GATEWAY_ADMIN_TOKEN;
    if (!token) {
      stderr.write('tracing-gateway trace: no admin token: set GATEWAY_ADMIN_TOKEN or pass --token\n');
      return 2;
    }

    let status: number;
    let body: unknown;
    try {
      // undici rather than fetch: fetch refuses some ports outright (its "bad ports" list).
      const res = await request(`${base}/admin/lookup/${encodeURIComponent(id)}`, {
        headers: { authorization: `Bearer ${token}`, accept: 'application/json' },
        headersTimeout: 30_000,
        bodyTimeout: 30_000,
      });
      status = res.statusCode;
      body = await res.body.json().catch(() => undefined);
    } catch (err) {
      const e = err as Error & { code?: string };
      stderr.write(`tracing-gateway trace: cannot reach the admin API at ${base} (${e.code ?? e.message}); is the gateway running with an "admin" block?\n`);
      return 1;
    }

    const color = useColor(stdout, env);
    let summary: TraceSummary | undefined;
    let exit = 0;
    if (status === 200 && body && typeof body === 'object') {
      summary = body as TraceSummary;
      stdout.write(values.json ? `${JSON.stringify(summary, null, 2)}\n` : renderTrace(summary, { color, columns: stdout.columns || 120 }));
    } else {
      const err = (body ?? {}) as ErrorBody;
      stderr.write(`tracing-gateway trace: ${err.message ?? `the admin API answered ${status}`}\n`);
      if (err.reasons?.length) stderr.write(`Likely reasons:\n${err.reasons.map((r) => `  - ${r}`).join('\n')}\n`);
      exit = status === 400 ? 2 : 1;
    }

    if (values.logs && exit !== 2) {
      // Unsampled requests have no spans but still have log lines: search by the ID either way.
      const traceId = summary?.traceId ?? normalizeTraceId(id);
      const requestId = summary?.requestId ?? (isValidRequestId(id) ? id : undefined);
      let lines: string[];
      try {
        lines = await matchingLogLines(values.logs, traceId, requestId);
      } catch (err) {
        stderr.write(`tracing-gateway trace: cannot read ${values.logs}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}\n`);
        return 1;
      }
      stdout.write(`\nLog lines in ${values.logs}: ${lines.length}\n`);
      for (const line of lines) {
        const failed = /"level":"(error|fatal)"/.test(line);
        stdout.write(`${color && failed ? `\x1b[31m${line}\x1b[0m` : line}\n`);
      }
    }
    return exit;
  }
}
