// The fast upstream every target forwards to: Debian's nginx when installed, else node:http.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, start, stop, waitForPort, type Proc } from './procs.ts';

export const NGINX = '/usr/sbin/nginx';
/** The small JSON body, as in the peer measurements (a static 27-byte JSON answer). */
export const UPSTREAM_BODY = '{"ok":true,"service":"up"}\n';

export interface Upstream {
  kind: string;
  url: string;
  port: number;
  proc: Proc;
  close(): Promise<void>;
}

function nginxConfig(dir: string, port: number): string {
  // Everything nginx may write lives under the temp prefix: no /var/lib/nginx, /run or /var/log.
  // master_process off: one process doing the work, so its /proc figures are the upstream's cost.
  return `daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
lock_file ${dir}/nginx.lock;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  # Keep-alive connections are never recycled during a run (nginx closes them after 1000 by default).
  keepalive_requests 100000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    location / {
      default_type application/json;
      return 200 '${UPSTREAM_BODY.trimEnd()}\\n';
    }
  }
}
`;
}

export async function startUpstream(tmp: string, nodeBin: string, benchDir: string, fixedPort?: number): Promise<Upstream> {
  const port = fixedPort ?? (await freePort());
  let proc: Proc;
  let kind: string;
  if (existsSync(NGINX)) {
    const dir = join(tmp, 'nginx');
    mkdirSync(dir, { recursive: true });
    const conf = join(dir, 'nginx.conf');
    writeFileSync(conf, nginxConfig(dir, port));
    proc = start('upstream (nginx)', NGINX, ['-p', dir, '-c', conf, '-e', join(dir, 'error.log')]);
    kind = `nginx (${NGINX}, 1 process, static ${UPSTREAM_BODY.length}-byte JSON)`;
  } else {
    proc = start('upstream (node:http)', nodeBin, [join(benchDir, 'targets/node-upstream.ts'), String(port)]);
    kind = `node:http (${NGINX} not found; static ${UPSTREAM_BODY.length}-byte JSON)`;
  }
  await waitForPort(proc, port);
  const url = `http://127.0.0.1:${port}`;
  const res = await fetch(`${url}/api/hello`);
  const body = await res.text();
  if (res.status !== 200 || body !== UPSTREAM_BODY) throw new Error(`upstream answered ${res.status} ${JSON.stringify(body)}`);
  return { kind, url, port, proc, close: async () => void (await stop(proc, 'SIGTERM', 5000)) };
}
