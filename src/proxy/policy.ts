/**
 * SPEC §3.5: the checks on a provider's answer. Pure: no I/O, no clock of its own. They run on
 * every request, cached answer or not, so an answer fetched for one route never satisfies
 * another route's scopes.
 */
import { TollgateError } from '../errors.js';
import { claim, type Answer } from '../provider/answer.js';
import { sameIssuer } from '../provider/issuer.js';

export interface PolicyProvider {
  readonly issuer: string;
  /** The token's `aud` must contain one of these, when given. */
  readonly audience: readonly string[] | undefined;
}

export interface PolicyRoute {
  readonly scopes: readonly string[];
  readonly scopeText: string;
}

const invalid = (description: string) => new TollgateError('invalid_token', description);

/**
 * Token types that are no access token, in RFC 6749 / OpenID Connect and RFC 8693 spelling. A
 * provider may ignore `token_type_hint` (RFC 7662 §2.1) and vouch for a refresh or ID token that
 * was presented here; the ID token would then pass as the user's access token.
 */
const NOT_ACCESS_TOKEN_TYPES: ReadonlyMap<string, string> = new Map([
  ['refresh_token', 'a refresh token is not an access token'],
  ['urn:ietf:params:oauth:token-type:refresh_token', 'a refresh token is not an access token'],
  ['id_token', 'an ID token is not an access token'],
  ['urn:ietf:params:oauth:token-type:id_token', 'an ID token is not an access token'],
]);
const NOT_ACCESS_TOKEN_TYPE_LENGTHS = new Set([...NOT_ACCESS_TOKEN_TYPES.keys()].map((t) => t.length));

/** Why this token type is refused, case-insensitively; only a value of such a length is lower-cased (`Bearer` never is). */
const refusedTokenType = (tokenType: string): string | undefined =>
  NOT_ACCESS_TOKEN_TYPE_LENGTHS.has(tokenType.length) ? NOT_ACCESS_TOKEN_TYPES.get(tokenType.toLowerCase()) : undefined;

/**
 * The `aud` values that name a resource identifier (RFC 8707): the identifier as configured and
 * as a URL parser writes it (`https://API.example.com` and `https://api.example.com/` are one
 * resource, RFC 3986 §6.2.2–6.2.3), so a client that sends either spelling is understood. Paths
 * are compared exactly otherwise: `/mcp` and `/mcp/` may be different resources.
 */
export function resourceAudience(identifier: string): readonly string[] {
  const url = new URL(identifier);
  const forms = new Set([identifier, url.href]);
  if (url.pathname === '/' && url.search === '') forms.add(url.href.slice(0, -1));
  return Object.freeze([...forms]);
}

/**
 * `resourceAud`: with a protected resource configured, what `aud` must contain for a
 * provider that names no `audience` of its own (the MCP authorization specification: a server
 * accepts only tokens issued for it); undefined without one.
 */
export function checkPolicy(
  answer: Answer,
  provider: PolicyProvider,
  route: PolicyRoute,
  nowS: number,
  skewS: number,
  resourceAud: readonly string[] | undefined,
): void {
  if (claim(answer, 'active') !== true) throw invalid('the token is not active');
  const exp = claim(answer, 'exp');
  const nbf = claim(answer, 'nbf');
  const iss = claim(answer, 'iss');
  const aud = claim(answer, 'aud');
  const tokenType = claim(answer, 'token_type');
  if (exp !== undefined && (typeof exp !== 'number' || exp + skewS <= nowS)) throw invalid('the token has expired');
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf - skewS > nowS)) throw invalid('the token is not yet valid');
  if (iss !== undefined && (typeof iss !== 'string' || !sameIssuer(iss, provider.issuer)))
    throw invalid('the token was issued by another issuer');
  const audience = provider.audience ?? resourceAud;
  if (audience !== undefined && !audienceMatches(aud, audience)) {
    throw invalid('the token is not meant for this audience');
  }
  if (typeof tokenType === 'string') {
    const refused = refusedTokenType(tokenType);
    if (refused !== undefined) throw invalid(refused);
  }
  // RFC 7800 / RFC 8705 / RFC 9449: a sender-constrained token proves nothing when presented bare.
  if (claim(answer, 'cnf') !== undefined) throw invalid('the token is sender-constrained and cannot be used as a bearer token');
  const scopes = route.scopes;
  for (let i = 0; i < scopes.length; i++) {
    if (!answer.scopes.has(scopes[i]!)) {
      throw new TollgateError('insufficient_scope', 'the token lacks a scope this route requires', { scope: route.scopeText });
    }
  }
}

function audienceMatches(aud: unknown, accepted: readonly string[]): boolean {
  if (typeof aud === 'string') return accepted.includes(aud);
  if (Array.isArray(aud)) return aud.some((a) => typeof a === 'string' && accepted.includes(a));
  return false;
}
