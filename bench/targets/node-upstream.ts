// Fallback upstream when Debian's nginx is not installed: the smallest node:http server that
// answers every request with the same small JSON body. Usage: node node-upstream.ts <port>
import { createServer } from 'node:http';

const port = Number(process.argv[2]);
const BODY = Buffer.from('{"ok":true,"service":"up"}\n');
const HEADERS = { 'content-type': 'application/json', 'content-length': String(BODY.length) };

const server = createServer((req, res) => {
  // Drain any request body so keep-alive connections stay usable.
  req.resume();
  res.writeHead(200, HEADERS).end(BODY);
});
server.keepAliveTimeout = 65_000;
server.listen(port, '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
