/**
 * JWT access tokens (RFC 9068) verified locally, with jose: the signature with a key of the
 * provider's JWK Set only (never one named by the token itself: `jwk`, `jku`, `x5u` and `x5c` are
 * not read), the algorithm from the allow-list and of the key's type, `iss`, `aud`, `exp`
 * (required) and `nbf` within the clock skew, `typ` when configured, and no `crit` header that is
 * not understood. A verified token becomes the claims an introspection answer would have given,
 * so the checks and headers that follow cannot tell the two apart.
 */
import { errors, jwtVerify, type JWTVerifyGetKey } from 'jose';
import type { Clock } from '../clock.js';
import type { JwtConfig } from '../config/jwt-schema.js';
import { TollgateError } from '../errors.js';

export interface JwtVerifierOptions {
  readonly issuer: string;
  /** The token's `aud` must contain one of these (required with jwt: an ID token's aud is its client). */
  readonly audience: readonly string[];
  readonly jwt: JwtConfig;
  /** Tolerance for `exp` and `nbf` (seconds). */
  readonly clockSkewS: number;
}

export interface JwtVerifierDeps {
  /** The provider's keys (jwks.ts). */
  readonly getKey: JWTVerifyGetKey;
  readonly clock: Clock;
}

/** Verifies one token; resolves with its claims as an answer, or rejects with `invalid_token`. */
export type JwtVerifier = (token: string) => Promise<Record<string, unknown>>;

/**
 * RFC 7515 §7.1 compact serialisation: three base64url parts whose protected header names an
 * `alg`. A JWE has five parts and is not one (it goes to introspection, when the provider has it).
 */
export function isJwtShaped(token: string): boolean {
  const first = token.indexOf('.');
  if (first <= 0) return false;
  const second = token.indexOf('.', first + 1);
  if (second === -1 || token.indexOf('.', second + 1) !== -1) return false;
  const head = token.slice(0, first);
  if (!/^[A-Za-z0-9_-]+$/.test(head)) return false;
  try {
    const header: unknown = JSON.parse(Buffer.from(head, 'base64url').toString('utf8'));
    return typeof header === 'object' && header !== null && typeof (header as { alg?: unknown }).alg === 'string';
  } catch {
    return false;
  }
}

export function createJwtVerifier(options: JwtVerifierOptions, deps: JwtVerifierDeps): JwtVerifier {
  // Issuers are one issuer with or without a trailing slash (as in the configuration's comparison).
  const bare = options.issuer.endsWith('/') ? options.issuer.slice(0, -1) : options.issuer;
  const issuers = [bare, `${bare}/`];
  const { jwt, clockSkewS } = options;
  const audience = [...options.audience];
  const algorithms = [...jwt.algorithms];
  return async (token) => {
    // RFC 4648 §3.5: an encoder sets the unused bits of the last character to zero. A decoder
    // ignores them, so one signature would have several spellings, each its own token (and cache
    // entry): only the canonical one is accepted.
    if (!isCanonical(token)) throw new TollgateError('invalid_token', 'the token is not a valid JWT');
    let payload: Record<string, unknown>;
    try {
      ({ payload } = await jwtVerify(token, deps.getKey, {
        issuer: issuers,
        audience,
        algorithms,
        ...(jwt.typ === null ? {} : { typ: jwt.typ }),
        clockTolerance: clockSkewS,
        currentDate: new Date(deps.clock.now()),
        requiredClaims: ['exp'],
      }));
    } catch (err) {
      throw new TollgateError('invalid_token', describeRefusal(err), { cause: err });
    }
    return toClaims(payload, jwt.scope_claims);
  };
}

function isCanonical(token: string): boolean {
  for (const part of token.split('.')) {
    if (Buffer.from(part, 'base64url').toString('base64url') !== part) return false;
  }
  return true;
}

/**
 * The claims as an introspection answer carries them: `active`, `scope` (from the configured
 * scope claims, space-separated) and `client_id` (RFC 9068 §2.2; Entra ID says `azp` or `appid`).
 */
export function toClaims(payload: Record<string, unknown>, scopeClaims: readonly string[]): Record<string, unknown> {
  const claims: Record<string, unknown> = { ...payload, active: true };
  const own = (name: string) => (Object.hasOwn(payload, name) ? payload[name] : undefined);
  const scopeClaim = scopeClaims.find((name) => own(name) !== undefined);
  const scope = scopeClaim === undefined ? undefined : own(scopeClaim);
  if (typeof scope === 'string') claims.scope = scope.split(' ').filter(Boolean).join(' ');
  else if (Array.isArray(scope)) claims.scope = scope.filter((s) => typeof s === 'string').join(' ');
  else delete claims.scope; // only the configured claims stand for the scope
  const clientId = [own('client_id'), own('azp'), own('appid')].find((v) => typeof v === 'string');
  if (clientId !== undefined) claims.client_id = clientId;
  return claims;
}

/** A fixed sentence per refusal: never a claim's value, never the token. */
function describeRefusal(err: unknown): string {
  if (err instanceof errors.JWTExpired) return 'the token has expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    switch (err.claim) {
      case 'nbf':
        return 'the token is not yet valid';
      case 'iss':
        return 'the token was issued by another issuer';
      case 'aud':
        return 'the token is not meant for this audience';
      case 'exp':
        return 'the token has no valid exp';
      case 'typ':
        return 'the token is not of the required type';
      default:
        return 'a claim of the token is not valid';
    }
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return "the token's algorithm is not allowed";
  if (err instanceof errors.JWKSNoMatchingKey) return "no key of the provider's matches the token";
  if (err instanceof errors.JWKSMultipleMatchingKeys) return "several keys of the provider's match the token";
  if (err instanceof errors.JWSSignatureVerificationFailed) return "the token's signature is not valid";
  if (err instanceof errors.JOSENotSupported) return 'the token uses a header or algorithm that is not supported';
  return 'the token is not a valid JWT';
}
