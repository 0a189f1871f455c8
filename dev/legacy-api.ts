/**
 * The "legacy API" of the demo: it knows nothing of tokens and answers every request with what it
 * received, the identity headers tollgate added among them.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LegacyApi {
  readonly url: string;
  close(): Promise<void>;
}

export async function startLegacyApi(port = 0): Promise<LegacyApi> {
  const server: Server = createServer((req, res) => {
    const identity = Object.fromEntries(Object.entries(req.headers).filter(([name]) => name.startsWith('x-auth-')));
    const body = JSON.stringify({ api: 'legacy-orders', method: req.method, path: req.url, identity }, null, 2);
    res.writeHead(200, { 'content-type': 'application/json' }).end(`${body}\n`);
  });
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
