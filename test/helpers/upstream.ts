/**
 * The API behind tollgate in tests: it records every request that reaches it (so a test can
 * assert that nothing of a refused request did) and answers 200 with a small JSON body, or as the
 * test's handler says.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface Recorded {
  method: string;
  url: string;
  /** Lower-cased names; repeated headers keep every value. */
  headers: Record<string, string[]>;
  rawHeaders: string[];
  body: Buffer;
}

export interface RecordingUpstream {
  readonly url: string;
  readonly requests: Recorded[];
  /** The one request received; fails the test's expectation if there were more or none. */
  only(): Recorded;
  /** Replaces the answer (default: 200 `{"ok":true}`). */
  handle(fn: (req: IncomingMessage, res: ServerResponse, body: Buffer) => void): void;
  close(): Promise<void>;
}

export interface UpstreamOptions {
  /** Keep every request (default true); benchmarks only count them. */
  record?: boolean;
}

export async function startUpstream(options: UpstreamOptions = {}): Promise<RecordingUpstream> {
  const requests: Recorded[] = [];
  type Handler = (req: IncomingMessage, res: ServerResponse, body: Buffer) => void;
  let handler: Handler = (_req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
  };
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const headers: Record<string, string[]> = {};
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i]!.toLowerCase();
        (headers[name] ??= []).push(req.rawHeaders[i + 1]!);
      }
      const body = Buffer.concat(chunks);
      if (options.record !== false)
        requests.push({ method: req.method!, url: req.url!, headers, rawHeaders: req.rawHeaders, body });
      handler(req, res, body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    requests,
    only() {
      if (requests.length !== 1) throw new Error(`expected exactly one request upstream, got ${requests.length}`);
      return requests[0]!;
    },
    handle(fn) {
      handler = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
