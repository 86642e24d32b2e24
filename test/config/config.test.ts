import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ROOT, writeConfig } from '../helpers/gateway.js';

function start(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', './dist/src/telemetry/register.js', 'dist/src/main.js', ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, ...env },
    encoding: 'utf8',
    timeout: 15_000,
  });
  return { code: result.status, stderr: result.stderr, stdout: result.stdout };
}

const valid = {
  upstreams: { users: { url: 'http://127.0.0.1:9' } },
  routes: [{ name: 'users', prefix: '/users', upstream: 'users' }],
};

describe('bad configuration stops start-up with one line naming file, key and problem', () => {
  const cases: Array<[string, unknown, string]> = [
    ['unknown upstream', { ...valid, routes: [{ name: 'r', prefix: '/r', upstream: 'nope' }] }, 'routes[0].upstream: unknown upstream "nope" (defined: users)'],
    ['bad prefix', { ...valid, routes: [{ name: 'r', prefix: 'r', upstream: 'users' }] }, 'routes[0].prefix: must start with "/"'],
    ['reserved prefix', { ...valid, routes: [{ name: 'r', prefix: '/metrics', upstream: 'users' }] }, `routes[0].prefix: "/metrics" collides with the gateway's reserved path /metrics`],
    ['reserved health prefix', { ...valid, routes: [{ name: 'r', prefix: '/health/x', upstream: 'users' }] }, 'routes[0].prefix: "/health/x" collides'],
    ['not a URL', { ...valid, upstreams: { users: { url: 'not a url' } } }, 'upstreams.users.url: must be an http:// or https:// URL'],
    ['wrong type', { ...valid, routes: [{ name: 'r', prefix: '/r', upstream: 'users', timeoutMs: 'soon' }] }, 'routes[0].timeoutMs:'],
    ['unknown key', { ...valid, lisen: { port: 1 } }, '(root): unknown key(s) "lisen"'],
    ['bad method', { ...valid, routes: [{ name: 'r', prefix: '/r', upstream: 'users', methods: ['FETCH'] }] }, 'routes[0].methods[0]:'],
    ['duplicate prefix', { ...valid, routes: [{ name: 'a', prefix: '/r', upstream: 'users' }, { name: 'b', prefix: '/r', upstream: 'users' }] }, 'routes[1].prefix: duplicate prefix "/r"'],
    ['no routes', { upstreams: valid.upstreams, routes: [] }, 'routes: at least one route is required'],
    ['no proxy threads', { ...valid, workers: 0 }, 'workers: must be a whole number from 1 to 64, or "auto"'],
    ['proxy threads not a number', { ...valid, workers: 'many' }, 'workers: must be a whole number from 1 to 64, or "auto"'],
  ];
  it.each(cases)('%s', (_name, config, expected) => {
    const file = writeConfig(config);
    const { code, stderr } = start(['--config', file]);
    expect(code).toBe(1);
    const lines = stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain(`config error: ${file}: `);
    expect(lines[0]).toContain(expected);
  });

  it('invalid YAML', () => {
    const file = writeConfig('x');
    writeFileSync(file, 'routes: [\n  - name: a\n    prefix: /a\n  bad indent\n');
    const { code, stderr } = start(['--config', file]);
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(new RegExp(`${file}: (line \\d+: )?not valid YAML/JSON`));
  });

  it('missing file, via GATEWAY_CONFIG', () => {
    const { code, stderr } = start([], { GATEWAY_CONFIG: '/nonexistent/gateway.yaml' });
    expect(code).toBe(1);
    expect(stderr.trim()).toBe('tracing-gateway: /nonexistent/gateway.yaml: cannot read file (ENOENT)');
  });

  it('a bad port in the environment', () => {
    const { code, stderr } = start(['--config', writeConfig(valid)], { GATEWAY_PORT: 'eighty' });
    expect(code).toBe(1);
    expect(stderr).toContain('listen.port: GATEWAY_PORT="eighty" is not a port number');
  });

  it('a bad GATEWAY_WORKERS', () => {
    const { code, stderr } = start(['--config', writeConfig(valid)], { GATEWAY_WORKERS: '2.5' });
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('workers: GATEWAY_WORKERS="2.5" is not a whole number from 1 to 64, or "auto"');
  });

  it('a port taken by another program, with several proxy threads', async () => {
    const { createServer } = await import('node:net');
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const port = (taken.address() as { port: number }).port;
    try {
      const result = spawnSync(process.execPath, ['--import', './dist/src/telemetry/register.js', 'dist/src/main.js', '--config', writeConfig({ ...valid, workers: 2, listen: { host: '127.0.0.1', port } })], {
        cwd: ROOT,
        env: { PATH: process.env.PATH },
        encoding: 'utf8',
        timeout: 15_000,
      });
      expect(result.status).toBe(1);
      expect(result.stderr.trim()).toBe(`tracing-gateway: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      taken.close();
    }
  });

  it('a bad LOG_LEVEL', () => {
    const { code, stderr } = start(['--config', writeConfig(valid)], { LOG_LEVEL: 'loud' });
    expect(code).toBe(1);
    expect(stderr).toContain('logging.level: LOG_LEVEL="loud" is not one of');
  });
});
