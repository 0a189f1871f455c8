/**
 * For the identity_jwt tests: signing key files of each kind, and an API that trusts no header —
 * it verifies the minted token against tollgate's `/.well-known/jwks.json`, as README's example
 * does, and answers what it verified.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createLocalJWKSet, jwtVerify, type JWTPayload, type JWTHeaderParameters } from 'jose';
import type { Clock } from '../../src/clock.js';
import { request } from './http.js';
import { startUpstream, type RecordingUpstream } from './upstream.js';

export type KeyKind = 'ES256' | 'EdDSA' | 'RS256';

export function generateKey(kind: KeyKind): KeyObject {
  if (kind === 'ES256') return generateKeyPairSync('ec', { namedCurve: 'prime256v1' }).privateKey;
  if (kind === 'EdDSA') return generateKeyPairSync('ed25519').privateKey;
  return generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

/** The key as a file's content: PKCS#8 PEM, PKCS#1 / SEC1 PEM ("traditional"), or a private JWK. */
export function keyFile(key: KeyObject, format: 'pkcs8' | 'traditional' | 'jwk', extra: Record<string, unknown> = {}): string {
  if (format === 'jwk') return JSON.stringify({ ...key.export({ format: 'jwk' }), ...extra });
  const type = format === 'pkcs8' ? 'pkcs8' : key.asymmetricKeyType === 'rsa' ? 'pkcs1' : 'sec1';
  return key.export({ format: 'pem', type }) as string;
}

export interface Verified {
  readonly payload: JWTPayload & Record<string, unknown>;
  readonly protectedHeader: JWTHeaderParameters;
  /** The header value as received. */
  readonly raw: string;
}

export interface VerifyingApi {
  readonly upstream: RecordingUpstream;
  readonly url: string;
  /** What each request that reached the API verified, or why it failed. */
  readonly results: ({ ok: true; verified: Verified } | { ok: false; error: string })[];
}

/**
 * An upstream that verifies the token in `header` on every request against the JWKS at `jwksUrl`
 * (fetched per request, so a rotation shows at once), with `issuer` and `audience`, at the time of
 * `clock`. 200 with the verified payload, or 401 naming jose's error code.
 */
export async function startVerifyingApi(options: {
  jwksUrl: () => string;
  issuer: string;
  audience: string;
  header?: string;
  clock?: Clock;
}): Promise<VerifyingApi> {
  const upstream = await startUpstream();
  const header = (options.header ?? 'X-Auth-Token').toLowerCase();
  const results: VerifyingApi['results'] = [];
  upstream.handle((req, res) => {
    void (async () => {
      const values = req.headersDistinct[header] ?? [];
      try {
        if (values.length !== 1) throw Object.assign(new Error(`${values.length} ${header} headers`), { code: 'COUNT' });
        const raw = values[0]!;
        const jwt = header === 'authorization' ? raw.replace(/^Bearer /, '') : raw;
        const jwks = (await request(options.jwksUrl())).json<{ keys: Record<string, string>[] }>();
        const { payload, protectedHeader } = await jwtVerify(jwt, createLocalJWKSet(jwks as never), {
          issuer: options.issuer,
          audience: options.audience,
          typ: 'JWT',
          ...(options.clock ? { currentDate: new Date(options.clock.now()) } : {}),
        });
        const verified = { payload: payload as Verified['payload'], protectedHeader, raw };
        results.push({ ok: true, verified });
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(verified));
      } catch (err) {
        const error = String((err as { code?: unknown }).code ?? (err as Error).message);
        results.push({ ok: false, error });
        res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error }));
      }
    })();
  });
  return { upstream, url: upstream.url, results };
}
