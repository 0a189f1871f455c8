/**
 * The credential probe: once a provider's endpoint is known, tollgate introspects a token nobody
 * issued. A provider that accepts tollgate's credentials answers `{"active": false}` (RFC 7662
 * §2.2); one that does not answers 401 or 403 (§2.1 requires the caller to authenticate). So a
 * wrong client secret shows at start, in `check-config --discover` and `/readyz`, rather than as a
 * 503 on the first real request. The token is random, so no provider can have issued it, and it
 * is no secret: it is sent with the configured credentials to the provider's own endpoint.
 */
import { randomBytes } from 'node:crypto';
import * as oidc from 'openid-client';

/** Every probe token starts with this, so a provider's logs (and the tests' fakes) can tell it apart. */
export const PROBE_TOKEN_PREFIX = 'tollgate-credential-probe-';

export type ProbeOutcome =
  /** The provider answered as it does for an unknown token: tollgate's credentials work. */
  | { readonly result: 'accepted' }
  /** 401 or 403: the provider refuses tollgate itself. */
  | { readonly result: 'rejected'; readonly error: unknown }
  /**
   * Anything else (a 5xx, a timeout, an odd answer): said in the log, not held against readiness,
   * since the provider may still answer real tokens well.
   */
  | { readonly result: 'unexpected'; readonly error: unknown };

export async function probeCredentials(configuration: oidc.Configuration): Promise<ProbeOutcome> {
  const token = PROBE_TOKEN_PREFIX + randomBytes(16).toString('base64url');
  try {
    const answer = await oidc.tokenIntrospection(configuration, token, { token_type_hint: 'access_token' });
    if (answer.active === false) return { result: 'accepted' };
    return { result: 'unexpected', error: new Error('the provider called a token it never issued active') };
  } catch (error) {
    return { result: rejectsCredentials(error) ? 'rejected' : 'unexpected', error };
  }
}

/** The provider answered 401 or 403 to tollgate itself: its client_id or secret is wrong. */
export function rejectsCredentials(err: unknown): boolean {
  const e = err as { status?: unknown; cause?: { status?: unknown } } | null;
  const status = typeof e?.status === 'number' ? e.status : e?.cause?.status;
  return status === 401 || status === 403;
}

const rejections = new WeakSet<Error>();

/** The failure of a discovery that found the provider but whose credential probe was refused. */
export function credentialsRejected(description: string): Error {
  const err = new Error(description);
  rejections.add(err);
  return err;
}

export const isCredentialsRejection = (err: unknown): boolean => err instanceof Error && rejections.has(err);
