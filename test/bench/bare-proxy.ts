/**
 * The benchmark's reference: a pass-through proxy that does no authentication at all — the most a
 * Node proxy can do. It forwards with tollgate's own code (`relay` and `createUpstreamPool` of
 * src/proxy/forward.ts: the same pool settings, the request body streamed in, the answer written
 * straight into the response, hop-by-hop response headers dropped), so the difference between
 * the two is what tollgate adds: routing, the token, the cache, the checks, identity headers,
 * metrics, the access log.
 *
 * Runs in its own process; reports `{ url }` to its parent over IPC.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createUpstreamPool, relay } from '../../src/proxy/forward.js';

const upstreamUrl = process.env.BENCH_UPSTREAM_URL;
if (upstreamUrl === undefined) throw new Error('BENCH_UPSTREAM_URL is required');
const pool = createUpstreamPool(upstreamUrl, 30_000);

/** Headers undici refuses or that belong to one hop only (RFC 9110 §7.6.1). */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
]);

const server = createServer((req, res) => {
  const raw = req.rawHeaders;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    if (!HOP_BY_HOP.has(raw[i]!.toLowerCase())) headers.push(raw[i]!, raw[i + 1]!);
  }
  relay(pool, req, res, req.url ?? '/', headers, (outcome) => {
    if (outcome instanceof Error && !res.headersSent) {
      res.writeHead(502, { 'content-type': 'application/json' }).end('{"error":"bad_gateway"}');
    }
  });
});

server.listen(0, '127.0.0.1', () => {
  process.send?.({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0)); // exit normally, so --cpu-prof writes its profile
