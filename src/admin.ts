/**
 * The admin listener (SPEC §5): metrics for Prometheus, liveness and readiness for Kubernetes, and
 * the public keys of the identity tokens (admin-jwks.ts).
 * Readiness answers a fixed word; why a provider is not ready is in the log, not here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Metrics } from './observability/metrics.js';
import { JWKS_PATH, serveJwks } from './admin-jwks.js';
import type { JwkSet } from './identity/mint.js';

export interface AdminDeps {
  metrics: Metrics;
  /** Configuration loaded, every provider's metadata known, not draining. */
  isReady(): boolean;
  /** The identity token's public keys now (null: identity_jwt is off). */
  jwks?(): JwkSet | null;
}

export function createAdminHandler(deps: AdminDeps) {
  return async function handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    switch (path) {
      case '/metrics': {
        const body = await deps.metrics.registry.metrics();
        res.writeHead(200, { 'content-type': deps.metrics.registry.contentType }).end(body);
        return;
      }
      case '/healthz':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
        return;
      case '/readyz': {
        const ready = deps.isReady();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ready\n' : 'not ready\n');
        return;
      }
      case JWKS_PATH:
        serveJwks(res, deps.jwks?.() ?? null);
        return;
      default:
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    }
  };
}
