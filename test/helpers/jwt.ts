/**
 * Signing keys and JWT access tokens for tests of local verification: what a provider that issues
 * RFC 9068 tokens would publish (its public JWKs) and sign.
 */
import { generateKeyPairSync } from 'node:crypto';
import { exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK, type JWTPayload } from 'jose';

export interface TestKey {
  readonly kid: string;
  readonly alg: 'RS256' | 'ES256' | 'PS256' | 'EdDSA';
  readonly privateKey: CryptoKey;
  /** The public JWK as a JWKS publishes it (kid, alg, use). */
  readonly publicJwk: JWK;
}

export async function testKey(alg: TestKey['alg'], kid: string): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  return { kid, alg, privateKey, publicJwk };
}

export interface SignOptions {
  /** Protected header fields besides alg and kid (typ, crit, jwk, jku…). */
  header?: Record<string, unknown>;
  /** Leave the kid out of the header. */
  noKid?: boolean;
}

/** A JWT with these claims, signed by `key` (iat set, nothing else added). */
export function signJwt(key: TestKey, claims: JWTPayload & Record<string, unknown>, options: SignOptions = {}): Promise<string> {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: key.alg, ...(options.noKid ? {} : { kid: key.kid }), ...options.header })
    .sign(key.privateKey);
}

/** Base64url JSON, to build tokens by hand (unsigned, confused, malformed). */
export const b64json = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A private JWK with its kid, as a provider's keystore holds it (oidc-provider's `jwks`). */
export function privateJwk(kind: 'RSA' | 'EC', kid: string): Record<string, unknown> & { kid: string } {
  const { privateKey } =
    kind === 'RSA' ? generateKeyPairSync('rsa', { modulusLength: 2048 }) : generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { ...privateKey.export({ format: 'jwk' }), kid, use: 'sig' };
}
