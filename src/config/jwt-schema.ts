/**
 * The `jwt` block of a provider: JWT access tokens (RFC 9068) verified locally with the provider's
 * published keys. Its own file so the provider schema only names it; what it refuses is said here.
 */
import { z } from 'zod';

/**
 * Asymmetric JWS algorithms (RFC 7518 §3, RFC 8037) that tollgate verifies. `none` proves nothing,
 * and an HMAC algorithm would make a public key a shared secret (the algorithm-confusion attack):
 * both are refused by name, so the message says why.
 */
export const JWT_ALGORITHMS = [
  'RS256',
  'RS384',
  'RS512',
  'PS256',
  'PS384',
  'PS512',
  'ES256',
  'ES384',
  'ES512',
  'EdDSA',
  'Ed25519',
] as const;
export type JwtAlgorithm = (typeof JWT_ALGORITHMS)[number];

export const DEFAULT_JWT_ALGORITHMS: readonly JwtAlgorithm[] = ['RS256', 'PS256', 'ES256', 'EdDSA'];
export const DEFAULT_SCOPE_CLAIMS: readonly string[] = ['scope', 'scp'];

const algorithm = z.string().superRefine((alg, ctx) => {
  if (alg.toLowerCase() === 'none')
    ctx.addIssue({ code: 'custom', message: 'none is refused: an unsigned token proves nothing' });
  else if (/^HS/i.test(alg)) {
    ctx.addIssue({ code: 'custom', message: `${alg} is refused: a shared-secret algorithm would let a public key sign tokens` });
  } else if (!(JWT_ALGORITHMS as readonly string[]).includes(alg)) {
    ctx.addIssue({ code: 'custom', message: `expected one of ${JWT_ALGORITHMS.join(', ')}` });
  }
});

export const jwtSchema = z.strictObject({
  jwks_uri: z.url().nullable().default(null).describe("The provider's JWK Set; default: the jwks_uri of its discovered metadata"),
  algorithms: z
    .array(algorithm)
    .min(1)
    .default([...DEFAULT_JWT_ALGORITHMS])
    .describe('The signature algorithms accepted, each only with a key of its type; none and HS* are refused'),
  typ: z
    .string()
    .min(1)
    .nullable()
    .default(null)
    .describe('The JOSE typ the token must carry, e.g. at+jwt (RFC 9068 §2.1); compared case-insensitively'),
  scope_claims: z
    .array(z.string().min(1))
    .min(1)
    .default([...DEFAULT_SCOPE_CLAIMS])
    .describe('Where the scopes are: the first claim present wins; a string is space-separated, an array taken as is'),
});

export type JwtConfig = z.output<typeof jwtSchema>;

/** What checkJwtProvider reads of a provider (partly valid while other fields have failed). */
interface JwtProviderOutline {
  readonly jwt?: unknown;
  readonly audience?: unknown;
  readonly client_id?: unknown;
  readonly client_secret?: unknown;
  readonly introspection_endpoint?: unknown;
  readonly allow_http?: unknown;
}

/**
 * Rules between the `jwt` block and the rest of a provider: a JWT for another audience (an ID
 * token among them) must never pass, and a provider must be able to vouch for something.
 */
export function checkJwtProvider(
  p: JwtProviderOutline,
  problem: (path: string, message: string) => void,
  isLoopbackHost: (hostname: string) => boolean,
): void {
  const hasJwt = p.jwt !== undefined;
  const jwksUri = (p.jwt as { jwks_uri?: unknown } | undefined)?.jwks_uri;
  if (typeof jwksUri === 'string' && URL.canParse(jwksUri)) {
    const url = new URL(jwksUri);
    if (url.protocol === 'http:' && p.allow_http !== true && !isLoopbackHost(url.hostname)) {
      problem('jwt.jwks_uri', 'http:// is accepted only for loopback hosts unless allow_http is true');
    } else if (url.protocol !== 'http:' && url.protocol !== 'https:') problem('jwt.jwks_uri', 'expected an https:// URL');
  }
  if (hasJwt && p.audience === undefined) {
    problem('audience', 'required with jwt: without it a token for another audience (an ID token) would be accepted');
  }
  if (p.client_id === undefined) {
    // Said as for any required key (without it the provider vouches for nothing), unless jwt makes
    // it optional: then what only introspection uses must not be left dangling.
    if (!hasJwt) problem('client_id', 'required');
    else {
      if (p.client_secret !== undefined) problem('client_secret', 'only with a client_id');
      if (p.introspection_endpoint !== undefined) {
        problem('introspection_endpoint', 'only with a client_id (introspection credentials)');
      }
    }
  }
}

/** Whether a provider can introspect: it has credentials to do so. */
export function hasIntrospection(p: { readonly client_id?: unknown }): boolean {
  return p.client_id !== undefined;
}

/**
 * `introspect: always` on a route whose allowed providers lack introspection could never let a JWT
 * of theirs through: an error, said at the route. Routes without `providers` allow every provider.
 */
export function checkIntrospectRoutes(
  providers: readonly { readonly name: unknown; readonly client_id?: unknown }[],
  routes: readonly { readonly introspect?: unknown; readonly providers?: readonly unknown[] | undefined }[],
): { path: (string | number)[]; message: string }[] {
  const problems: { path: (string | number)[]; message: string }[] = [];
  const byName = new Map(providers.map((p) => [p.name, p]));
  routes.forEach((r, i) => {
    if (r.introspect !== 'always') return;
    const allowed = r.providers ?? providers.map((p) => p.name);
    const lacking = allowed.filter((name) => {
      const p = byName.get(name);
      return p !== undefined && !hasIntrospection(p);
    });
    if (lacking.length > 0) {
      problems.push({
        path: ['routes', i, 'introspect'],
        message: `always needs introspection, and ${lacking.join(', ')} ${lacking.length === 1 ? 'has' : 'have'} none (no client_id)`,
      });
    }
  });
  return problems;
}
