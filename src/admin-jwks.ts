/**
 * `GET /.well-known/jwks.json` on the admin listener: the public keys an API verifies tollgate's
 * identity tokens with (RFC 7517 §5 JWK Set), current key first, then a replaced one for as long
 * as tokens signed with it may live. Public members only: keys.ts never copies a private one.
 */
import type { ServerResponse } from 'node:http';
import type { JwkSet } from './identity/mint.js';

export const JWKS_PATH = '/.well-known/jwks.json';

/** 404 when identity_jwt is off (no key to publish), else the set. */
export function serveJwks(res: ServerResponse, set: JwkSet | null): void {
  if (set === null) {
    res.writeHead(404, { 'content-type': 'text/plain' }).end('no identity_jwt key\n');
    return;
  }
  // No caching by intermediaries beyond a minute: a reload may rotate the key at any time.
  res.writeHead(200, { 'content-type': 'application/jwk-set+json', 'cache-control': 'max-age=60' }).end(JSON.stringify(set));
}
