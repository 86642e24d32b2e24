import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';

export interface RecordedRequest {
  method: string;
  url: string;
  /** Raw header lines as received, so duplicates and casing are visible. */
  rawHeaders: Array<[string, string]>;
  headers: IncomingMessage['headers'];
  bodyBytes: number;
  /** Set when the gateway closed the connection before this request was answered. */
  aborted: boolean;
}

export type Handler = (req: IncomingMessage, res: ServerResponse, record: RecordedRequest) => void;

export interface TestUpstream {
  url: string;
  port: number;
  requests: RecordedRequest[];
  server: Server;
  close(): Promise<void>;
}

/** A real HTTP upstream on 127.0.0.1 that records every request it gets. */
export async function startUpstream(handler?: Handler): Promise<TestUpstream> {
  const requests: RecordedRequest[] = [];
  const server = createServer((req, res) => {
    const rawHeaders: Array<[string, string]> = [];
    for (let i = 0; i < req.rawHeaders.length; i += 2) rawHeaders.push([req.rawHeaders[i]!, req.rawHeaders[i + 1]!]);
    const record: RecordedRequest = { method: req.method!, url: req.url!, rawHeaders, headers: req.headers, bodyBytes: 0, aborted: false };
    requests.push(record);
    res.on('close', () => {
      if (!res.writableFinished) record.aborted = true;
    });
    if (handler) return handler(req, res, record);
    req.on('data', (c: Buffer) => (record.bodyBytes += c.length));
    req.on('end', () => {
      const body = JSON.stringify({ ok: true, method: req.method, url: req.url });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    requests,
    server,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Header values received under `name` (case-insensitive), one entry per raw header line. */
export function rawHeaderValues(record: RecordedRequest, name: string): string[] {
  const lower = name.toLowerCase();
  return record.rawHeaders.filter(([k]) => k.toLowerCase() === lower).map(([, v]) => v);
}
