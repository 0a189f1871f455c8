/** Helpers for multi-provider tests: exact refusals and JWT-shaped tokens. */
import type { Test } from 'tap';
import type { Answer } from './http.js';

/** SPEC §4, exactly: a 401 invalid_token refusal. */
export function assertInvalidToken(t: Test, res: Answer, why?: RegExp): void {
  t.equal(res.status, 401);
  t.match(res.headers['www-authenticate'], /^Bearer realm="tollgate", error="invalid_token", error_description="[^"]+"$/);
  t.equal(res.headers['content-type'], 'application/json');
  t.equal(res.headers['cache-control'], 'no-store');
  t.equal(res.json().error, 'invalid_token');
  if (why) t.match(res.json().error_description, why);
}

/** A JWT-shaped token claiming `iss` (unsigned: tollgate only reads `iss` to choose a provider). */
export function jwtClaiming(iss: string, extra: Record<string, unknown> = {}): string {
  const part = (v: unknown) => Buffer.from(JSON.stringify(v)).toString('base64url');
  return `${part({ alg: 'RS256', typ: 'at+jwt' })}.${part({ iss, sub: 'someone', ...extra })}.c2lnbmF0dXJl`;
}
