/**
 * The signed identity for the API (`headers.identity_jwt`): a short-lived JWT (RFC 7519) that
 * carries what the provider vouched for, signed with tollgate's key, so the API can check it
 * instead of trusting headers that anything on its network path could have set.
 *
 * A token is minted for an answer (a cache entry, cache/answers.ts) and kept beside it in a
 * WeakMap, so it goes when the answer goes and the cache knows nothing of it. It is reused while
 * more than half its life remains: a cache hit signs nothing. A refreshed answer is a new object,
 * so it gets a new token.
 *
 * Compiled per configuration load. A reload that keeps the settings and the key keeps the minted
 * tokens; one that changes either starts afresh, so no token minted under the old settings is
 * handed out again. After a key change the previous key stays in the key set for the old
 * `ttl_s`, so the tokens already minted with it verify until they expire.
 */
import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import type { Config } from '../config/schema.js';
import { claim, type Answer } from '../provider/answer.js';
import { generateSigningKey, keySource, readSigningKeyOrThrow, type PublicJwk, type SigningKey } from './keys.js';

export type IdentitySettings = NonNullable<Config['headers']['identity_jwt']>;

/** The public keys an API verifies identity tokens against, current first (RFC 7517 §5). */
export interface JwkSet {
  readonly keys: readonly PublicJwk[];
}

export interface KeySet {
  /** The key new tokens are signed with; null when identity_jwt is off. */
  readonly current: SigningKey | null;
  /** Keys replaced by a reload, each listed until `untilMs` (epoch milliseconds). */
  readonly previous: readonly { readonly key: SigningKey; readonly untilMs: number }[];
  /** The JWK Set to serve at `nowMs`; null when there is no key at all (identity_jwt never on). */
  jwks(nowMs: number): JwkSet | null;
}

export interface Minter {
  /** Lower-cased header the token travels in. */
  readonly header: string;
  /**
   * The header's value for this answer: the reused token when more than half its life remains
   * (no promise then), else a new one. `Bearer <jwt>` when the header is Authorization.
   */
  mint(answer: Answer, nowMs: number): string | Promise<string>;
}

export interface Identity {
  /** Null when identity_jwt is not configured. */
  readonly minter: Minter | null;
  readonly keys: KeySet;
  /** Settings of this load, for the next one to compare with. */
  readonly settings: IdentitySettings | null;
}

/** A token kept with its answer: the header value (or the signature still being made) and its half-life. */
interface Minted {
  value: string | Promise<string>;
  readonly reuseUntilMs: number;
}

export interface CompileIdentityOptions {
  /** The identity of the load before this one (a reload), whose key and tokens may carry over. */
  readonly previous?: Identity | undefined;
  /** Provider name → issuer, for the `provider_iss` claim. */
  readonly issuers: ReadonlyMap<string, string>;
  readonly nowMs: number;
}

export function compileIdentity(settings: IdentitySettings | null, options: CompileIdentityOptions): Identity {
  const { previous, nowMs } = options;
  const before = previous?.keys.current ?? null;
  if (settings === null) return Object.freeze({ minter: null, keys: nextKeySet(previous, null, nowMs), settings });
  const keyFile = settings.key_file;
  // The same file contents (or, without a file, the same algorithm): the same key, even a
  // generated one, so a reload never rotates a key by accident.
  const current =
    before !== null && before.source === keySource(settings)
      ? before
      : keyFile === undefined
        ? generateSigningKey(settings)
        : readSigningKeyOrThrow({ ...settings, key_file: keyFile });
  const keys = nextKeySet(previous, current, nowMs);
  // The tokens already minted are handed out again only under the same key and settings.
  const kept = previous?.minter;
  const minter =
    kept != null && current === before && sameSettings(previous!.settings, settings)
      ? kept
      : createMinter(settings, current, options.issuers);
  return Object.freeze({ minter, keys, settings });
}

/** The new current key first; the one it replaces listed for the old ttl_s; expired ones dropped. */
function nextKeySet(previous: Identity | undefined, current: SigningKey | null, nowMs: number): KeySet {
  const before = previous?.keys;
  let kept = (before?.previous ?? []).filter((p) => p.untilMs > nowMs && p.key.source !== current?.source);
  if (before?.current != null && before.current !== current) {
    // Tokens minted with it live at most the old ttl_s (their exp is never later).
    const untilMs = nowMs + (previous?.settings?.ttl_s ?? 0) * 1000;
    kept = [{ key: before.current, untilMs }, ...kept.filter((p) => p.key.source !== before.current!.source)];
  }
  const previousKeys = Object.freeze(kept);
  return Object.freeze({
    current,
    previous: previousKeys,
    jwks(now: number): JwkSet | null {
      const listed = previousKeys.filter((p) => p.untilMs > now).map((p) => p.key.publicJwk);
      if (current === null && listed.length === 0) return null;
      return { keys: current === null ? listed : [current.publicJwk, ...listed] };
    },
  });
}

function sameSettings(a: IdentitySettings | null, b: IdentitySettings): boolean {
  return (
    a !== null &&
    a.header === b.header &&
    a.issuer === b.issuer &&
    a.audience === b.audience &&
    a.ttl_s === b.ttl_s &&
    a.key_file === b.key_file &&
    a.alg === b.alg
  );
}

function createMinter(settings: IdentitySettings, key: SigningKey, issuers: ReadonlyMap<string, string>): Minter {
  const header = settings.header.toLowerCase();
  const prefix = header === 'authorization' ? 'Bearer ' : '';
  const ttlS = settings.ttl_s;
  const protectedHeader = Object.freeze({ alg: key.alg, kid: key.kid, typ: 'JWT' });
  const minted = new WeakMap<Answer, Minted>();

  return Object.freeze({
    header,
    mint(answer: Answer, nowMs: number): string | Promise<string> {
      const kept = minted.get(answer);
      if (kept !== undefined && nowMs < kept.reuseUntilMs) return kept.value;
      const iat = Math.floor(nowMs / 1000);
      const accessExp = claim(answer, 'exp');
      // Never past the access token's own exp: the API must not accept what the provider no longer would.
      const exp = typeof accessExp === 'number' ? Math.min(iat + ttlS, Math.floor(accessExp)) : iat + ttlS;
      const payload: Record<string, unknown> = {
        iss: settings.issuer,
        aud: settings.audience,
        iat,
        exp,
        // Shared by the requests that reuse this token: it names the token, not a request.
        jti: randomUUID(),
      };
      for (const name of ['sub', 'client_id', 'scope'] as const) {
        const value = claim(answer, name);
        if (value !== undefined && value !== null) payload[name] = value;
      }
      payload.provider = answer.provider;
      const providerIss = issuers.get(answer.provider);
      if (providerIss !== undefined) payload.provider_iss = providerIss;

      const entry: Minted = {
        value: new SignJWT(payload)
          .setProtectedHeader(protectedHeader)
          .sign(key.privateKey)
          .then(
            (jwt) => (entry.value = prefix + jwt),
            (err: unknown) => {
              // Not kept: the next request tries again.
              if (minted.get(answer) === entry) minted.delete(answer);
              throw err;
            },
          ),
        // Reused while more than half its life, counted from iat, remains.
        reuseUntilMs: (iat + (exp - iat) / 2) * 1000,
      };
      minted.set(answer, entry);
      return entry.value;
    },
  });
}
