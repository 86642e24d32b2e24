import { spawn } from 'node:child_process';
import { configFor, ROOT, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { send, type Response } from '../helpers/http.js';

export const TOKEN = 'support-token-0123456789abcdef';

export interface AdminGateway extends RunningGateway {
  /** e.g. http://127.0.0.1:40123 */
  adminUrl: string;
}

/** The compiled gateway with an `admin` block on an ephemeral port; the token comes from the environment. */
export async function startAdminGateway(
  routes: Array<{ name: string; prefix: string; url: string; [k: string]: unknown }>,
  admin: Record<string, unknown> = {},
  env: Record<string, string> = { GATEWAY_ADMIN_TOKEN: TOKEN },
): Promise<AdminGateway> {
  const gateway = await startGateway(configFor(routes, { admin: { port: 0, ...admin } }), env);
  const line = await gateway.waitForLog((l) => l.msg.startsWith('admin listening'));
  return Object.assign(gateway, { adminUrl: `http://${String(line.address)}` });
}

export function adminGet(gateway: AdminGateway, path: string, token: string | null = TOKEN): Promise<Response> {
  return send(`${gateway.adminUrl}${path}`, { headers: token === null ? {} : { authorization: `Bearer ${token}` } });
}

/** Sends a request through the gateway and waits until its spans have ended (the access log is written after). */
export async function tracedRequest(gateway: RunningGateway, path: string, headers: Record<string, string> = {}): Promise<{ res: Response; traceId: string; requestId: string }> {
  const res = await send(`${gateway.url}${path}`, { headers });
  const traceId = res.headers['x-trace-id'] as string;
  const requestId = res.headers['x-request-id'] as string;
  await gateway.waitForLog((l) => l.msg === 'request completed' && l.trace_id === traceId);
  return { res, traceId, requestId };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the compiled CLI exactly as the bin does: `node dist/src/main.js trace …`. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['dist/src/main.js', 'trace', ...args], { cwd: ROOT, env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
