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

const NO_SCOPES: ReadonlySet<string> = new Set();

export function toAnswer(claims: Record<string, unknown>, provider: string): Answer {
  const scope = Object.hasOwn(claims, 'scope') ? claims.scope : undefined;
  const scopes = typeof scope === 'string' && scope !== '' ? new Set(scope.split(' ').filter(Boolean)) : NO_SCOPES;
  return { claims, scopes, provider };
}

/** An own claim's value, never one inherited from Object.prototype. */
export function claim(answer: Answer, name: string): unknown {
  return Object.hasOwn(answer.claims, name) ? answer.claims[name] : undefined;
}
