import { spawn, type ChildProcess } from 'node:child_process';

/**
 * A TCP port on 127.0.0.1 whose listener never accepts and whose backlog is already full, so a
 * new connection attempt hangs in SYN-SENT until the client's connect timeout fires. Node's net
 * server always accepts, so this uses a tiny Python listener (python3 is on every machine here).
 */
export async function startBlackhole(): Promise<{ port: number; close(): void }> {
  const script = `
import socket, sys, time
s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(8):
    c = socket.socket(); c.setblocking(False)
    try: c.connect(('127.0.0.1', port))
    except BlockingIOError: pass
    fill.append(c)
time.sleep(0.2)
print(port, flush=True)
time.sleep(120)
`;
  const child: ChildProcess = spawn('python3', ['-c', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('error', reject);
  });
  return { port, close: () => child.kill('SIGKILL') };
}
