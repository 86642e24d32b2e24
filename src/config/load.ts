import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { configSchema, workersSchema, type GatewayConfig } from './schema.js';

/** A configuration problem, already phrased as the one line an operator reads. */
export class ConfigError extends Error {
  override name = 'ConfigError';
}

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || '(root)';
}

function firstIssue(file: string, error: z.ZodError): ConfigError {
  const issue = error.issues[0];
  if (!issue) return new ConfigError(`${file}: invalid configuration`);
  let message = issue.message;
  if (issue.code === 'unrecognized_keys') message = `unknown key(s) ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  const more = error.issues.length > 1 ? ` (and ${error.issues.length - 1} more problem(s))` : '';
  return new ConfigError(`${file}: ${formatPath(issue.path)}: ${message}${more}`);
}

function parsePort(raw: string, name: string, file: string): number {
  const port = Number(raw);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new ConfigError(`${file}: listen.port: ${name}="${raw}" is not a port number (0-65535)`);
  }
  return port;
}

/**
 * Reads and validates the gateway configuration (YAML or JSON).
 * Environment overrides: GATEWAY_HOST / GATEWAY_PORT (or PORT) for the listener, GATEWAY_WORKERS
 * for the proxy threads, LOG_LEVEL for logging.
 */
export function loadConfig(file: string, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`${file}: cannot read file (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text, { prettyErrors: false, uniqueKeys: true });
  } catch (err) {
    const line = (err as { linePos?: Array<{ line: number }> }).linePos?.[0]?.line;
    const reason = String((err as Error).message).split('\n')[0];
    throw new ConfigError(`${file}: ${line ? `line ${line}: ` : ''}not valid YAML/JSON: ${reason}`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new ConfigError(`${file}: (root): expected a mapping with "upstreams" and "routes"`);
  }
  const parsed = configSchema.safeParse(raw);
  if (!parsed.success) throw firstIssue(file, parsed.error);
  const config = parsed.data;

  if (env.GATEWAY_HOST) config.listen.host = env.GATEWAY_HOST;
  const port = env.GATEWAY_PORT ?? env.PORT;
  if (port !== undefined && port !== '') config.listen.port = parsePort(port, env.GATEWAY_PORT ? 'GATEWAY_PORT' : 'PORT', file);
  if (env.GATEWAY_WORKERS) {
    const raw = env.GATEWAY_WORKERS.trim();
    const workers = workersSchema.safeParse(raw === 'auto' ? raw : Number(raw));
    if (!workers.success) throw new ConfigError(`${file}: workers: GATEWAY_WORKERS="${env.GATEWAY_WORKERS}" is not a whole number from 1 to 64, or "auto"`);
    config.workers = workers.data;
  }
  if (env.LOG_LEVEL) {
    const level = configSchema.shape.logging.unwrap().shape.level.safeParse(env.LOG_LEVEL.toLowerCase());
    if (!level.success) throw new ConfigError(`${file}: logging.level: LOG_LEVEL="${env.LOG_LEVEL}" is not one of fatal, error, warn, info, debug, trace, silent`);
    config.logging.level = level.data;
  }
  return config;
}
