/**
 * SPEC §3.3: which provider may see this token. The rule that keeps one tenant's tokens away from
 * another tenant's provider: a token is never sent to a provider that could not have issued it.
 */
import { TollgateError } from '../errors.js';
import { issuerKey } from '../provider/issuer.js';
import { peekIssuer } from './token.js';

/** The providers a route allows, indexed so choosing one costs the same for 1 or 1,000. */
export interface AllowedProviders<P> {
  readonly list: readonly P[];
  /** Keyed by `issuerKey`: an issuer with or without its trailing `/` is the same issuer. */
  readonly byIssuer: ReadonlyMap<string, P>;
  readonly byName: ReadonlyMap<string, P>;
}

export function indexProviders<P extends { readonly name: string; readonly issuer: string }>(
  list: readonly P[],
): AllowedProviders<P> {
  return Object.freeze({
    list: Object.freeze([...list]),
    byIssuer: new Map(list.map((p) => [issuerKey(p.issuer), p])),
    byName: new Map(list.map((p) => [p.name, p])),
  });
}

/**
 * SPEC §3.3. Among the route's allowed providers: a JWT-shaped token goes to the provider whose
 * issuer equals its unverified `iss`; otherwise the only allowed provider; otherwise the one the
 * provider header names. Anything ambiguous or contradictory is refused before any call.
 */
export function selectProvider<P extends { readonly name: string }>(
  allowed: AllowedProviders<P>,
  token: string,
  named: string | undefined,
): P {
  const iss = peekIssuer(token);
  if (iss !== undefined) {
    const byIssuer = allowed.byIssuer.get(issuerKey(iss));
    if (byIssuer === undefined) throw new TollgateError('invalid_token', 'no provider allowed here issued this token');
    if (named !== undefined && named !== byIssuer.name) {
      throw new TollgateError('invalid_token', "the provider header contradicts the token's issuer");
    }
    return byIssuer;
  }
  if (named !== undefined) {
    const byName = allowed.byName.get(named);
    if (byName === undefined) throw new TollgateError('invalid_token', 'the provider header names no provider allowed here');
    return byName;
  }
  if (allowed.list.length === 1) return allowed.list[0]!;
  throw new TollgateError('invalid_token', 'cannot tell which provider issued this token');
}
