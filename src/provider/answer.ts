/**
 * A provider's introspection answer (RFC 7662 §2.2) as tollgate keeps it: the claims object as
 * parsed, plus what every request asks of it, computed once when the answer arrives.
 */
export interface Answer {
  /** The provider's JSON object. Read claims with Object.hasOwn: a claim may be named `constructor`. */
  readonly claims: Readonly<Record<string, unknown>>;
  /** The `scope` claim split on spaces (RFC 7662 §2.2, RFC 6749 §3.3). */
  readonly scopes: ReadonlySet<string>;
  /** The name of the provider that gave it. */
  readonly provider: string;
}

/**
 * What a route needs of a token (SPEC §9): `any` — what the provider vouches for (a verified JWT
 * or an introspection answer); `introspection` — the provider's own answer, asked even for a JWT
 * that verified (`introspect: always`: revocation is seen before the token expires).
 */
export type AnswerNeed = 'any' | 'introspection';

/** How a token was checked: the access line's `check`. */
export type Check = 'jwt' | 'introspection';

const NO_SCOPES: ReadonlySet<string> = new Set();

/**
 * Scope sets shared between answers. A deployment sees few distinct `scope` strings and the cache
 * holds up to `max_entries` answers: a set of its own per answer would cost ~270 bytes each. Bounded,
 * so unusual providers (a scope per user) cost only the sets they would have had anyway.
 */
const sharedScopes = new Map<string, ReadonlySet<string>>();
const MAX_SHARED_SCOPES = 1024;

/** The `scope` claim as a set; answers with the same `scope` string get the same (never mutated) set. */
export function scopesOf(claims: Record<string, unknown>): ReadonlySet<string> {
  const scope = Object.hasOwn(claims, 'scope') ? claims.scope : undefined;
  if (typeof scope !== 'string' || scope === '') return NO_SCOPES;
  let scopes = sharedScopes.get(scope);
  if (scopes === undefined) {
    scopes = new Set(scope.split(' ').filter(Boolean));
    if (sharedScopes.size < MAX_SHARED_SCOPES) sharedScopes.set(scope, scopes);
  }
  return scopes;
}

export function toAnswer(claims: Record<string, unknown>, provider: string): Answer {
  return { claims, scopes: scopesOf(claims), provider };
}

/** An own claim's value, never one inherited from Object.prototype. */
export function claim(answer: Answer, name: string): unknown {
  return Object.hasOwn(answer.claims, name) ? answer.claims[name] : undefined;
}
