/**
 * The key tollgate signs its identity tokens with (`headers.identity_jwt`), and the set of public
 * keys an API verifies them against (`GET /.well-known/jwks.json` on the admin listener).
 *
 * A key is an EC P-256, Ed25519 or RSA (2048 bits or more) private key, as PEM (PKCS#8, SEC1 or
 * PKCS#1) or as a JWK (or a JWK Set holding one key). Its `kid` is the JWK's own, else its RFC 7638
 * thumbprint, so every replica that mounts the same file names it alike. Without a key file a key
 * is generated at start: fine for one replica, but each replica would then sign with its own key.
 *
 * Problems name the file and what is wrong with it; the key's content never reaches a message.
 * Only the public members of a key are ever copied into the key set (never `d`, `p`, `q`, `dp`…).
 */
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parsePrivateKey } from '../config/keys.js';

/** JWS algorithms (RFC 7518, RFC 8037) an identity token may be signed with. */
export const IDENTITY_ALGS = ['ES256', 'EdDSA', 'RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] as const;
export type IdentityAlg = (typeof IDENTITY_ALGS)[number];

const isIdentityAlg = (alg: unknown): alg is IdentityAlg => IDENTITY_ALGS.includes(alg as IdentityAlg);

/** What keys.ts reads of `headers.identity_jwt`. */
export interface KeySettings {
  /** Absolute once loaded; undefined: a key generated at start. */
  readonly key_file?: string | undefined;
  readonly alg?: IdentityAlg | null | undefined;
}

/** A public key as the JWKS serves it: public members only, with `kid`, `alg` and `use`. */
export type PublicJwk = Readonly<Record<string, string>>;

export interface SigningKey {
  readonly kid: string;
  readonly alg: IdentityAlg;
  readonly privateKey: KeyObject;
  readonly publicJwk: PublicJwk;
  /** Equal for the same file contents and algorithm: a reload that finds it unchanged keeps the key. */
  readonly source: string;
  /** True for a key generated at start (no key file). */
  readonly generated: boolean;
}

export type KeyProblem = (key: 'key_file' | 'alg', message: string) => void;

/** The JWK members RFC 7638 §3.2 hashes, per key type, in their (lexicographic) order. */
const THUMBPRINT_MEMBERS: Readonly<Record<string, readonly string[]>> = {
  EC: ['crv', 'kty', 'x', 'y'],
  OKP: ['crv', 'kty', 'x'],
  RSA: ['e', 'kty', 'n'],
};

/** RFC 7638 JWK thumbprint (SHA-256, base64url) of a public JWK. */
export function jwkThumbprint(jwk: Readonly<Record<string, unknown>>): string {
  const members = THUMBPRINT_MEMBERS[String(jwk.kty)] ?? [];
  const canonical = `{${members.map((m) => `${JSON.stringify(m)}:${JSON.stringify(jwk[m])}`).join(',')}}`;
  return createHash('sha256').update(canonical).digest('base64url');
}

/**
 * What identifies the key a configuration asks for: the file's path and contents with the
 * algorithm, or "generated" with the algorithm. An unreadable file counts as changed.
 */
export function keySource(settings: KeySettings): string {
  const hash = createHash('sha256').update(`${settings.alg ?? ''}\0`);
  if (settings.key_file === undefined) return hash.update('generated').digest('base64url');
  hash.update(`${settings.key_file}\0`);
  try {
    hash.update(readFileSync(settings.key_file));
  } catch (err) {
    hash.update(`\0unreadable: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  return hash.digest('base64url');
}

/** Reads and checks the key file; every problem goes to `problem`, and the result is then undefined. */
export function readSigningKey(
  settings: KeySettings & { readonly key_file: string },
  problem: KeyProblem,
): SigningKey | undefined {
  const file = settings.key_file;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    problem('key_file', `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    return undefined;
  }
  let key: KeyObject | undefined;
  let kid: string | undefined;
  let jwkAlg: unknown;
  if (text.trimStart().startsWith('{')) {
    let jwk: Record<string, unknown> | undefined;
    try {
      const parsed = JSON.parse(text) as { keys?: unknown };
      jwk = (Array.isArray(parsed.keys) && parsed.keys.length === 1 ? parsed.keys[0] : parsed) as Record<string, unknown>;
    } catch {
      jwk = undefined;
    }
    if (jwk !== undefined && typeof jwk === 'object' && jwk !== null && jwk.d === undefined && jwk.kty !== undefined) {
      problem('key_file', `${file} holds a public key; tollgate needs the private key to sign`);
      return undefined;
    }
    try {
      key = createPrivateKey({ key: jwk as never, format: 'jwk' });
    } catch {
      key = undefined;
    }
    if (typeof jwk?.kid === 'string' && jwk.kid !== '') kid = jwk.kid;
    jwkAlg = jwk?.alg;
  } else if (/-----BEGIN ENCRYPTED PRIVATE KEY-----|Proc-Type:\s*4,ENCRYPTED/.test(text)) {
    problem('key_file', `${file} holds an encrypted key; store it decrypted (tollgate takes no passphrase)`);
    return undefined;
  } else {
    key = parsePrivateKey(text);
  }
  if (key === undefined) {
    problem('key_file', `${file} holds no PEM or JWK private key`);
    return undefined;
  }
  const kind = keyKind(key);
  if (typeof kind !== 'object') {
    problem('key_file', `${file}: ${kind}`);
    return undefined;
  }
  if (settings.alg != null && jwkAlg !== undefined && jwkAlg !== settings.alg) {
    problem('alg', `the key in ${file} is for ${String(jwkAlg)}`);
    return undefined;
  }
  const alg = settings.alg ?? (isIdentityAlg(jwkAlg) ? jwkAlg : kind.defaultAlg);
  if (!kind.fits(alg)) {
    problem(settings.alg == null ? 'key_file' : 'alg', `${alg} does not fit the ${kind.name} key in ${file}`);
    return undefined;
  }
  return signingKey(key, alg, kid, keySource(settings), false);
}

/** Like readSigningKey, but throws one error naming every problem (for code that builds a runtime). */
export function readSigningKeyOrThrow(settings: KeySettings & { readonly key_file: string }): SigningKey {
  const problems: string[] = [];
  const key = readSigningKey(settings, (at, message) => problems.push(`headers.identity_jwt.${at}: ${message}`));
  if (key === undefined) throw new Error(problems.join('; '));
  return key;
}

/** A new key for `alg` (ES256 by default): P-256, Ed25519, or RSA 2048 bits. */
export function generateSigningKey(settings: KeySettings): SigningKey {
  const alg = settings.alg ?? 'ES256';
  const { privateKey } =
    alg === 'ES256'
      ? generateKeyPairSync('ec', { namedCurve: 'prime256v1' })
      : alg === 'EdDSA'
        ? generateKeyPairSync('ed25519')
        : generateKeyPairSync('rsa', { modulusLength: 2048 });
  return signingKey(privateKey, alg, undefined, keySource(settings), true);
}

function signingKey(
  privateKey: KeyObject,
  alg: IdentityAlg,
  kid: string | undefined,
  source: string,
  generated: boolean,
): SigningKey {
  const exported = createPublicKey(privateKey).export({ format: 'jwk' }) as Record<string, string>;
  // Only the members a public key has: whatever else an export or a file carried stays out.
  const members = THUMBPRINT_MEMBERS[exported.kty!] ?? [];
  const pub: Record<string, string> = {};
  for (const m of members) pub[m] = exported[m]!;
  const id = kid ?? jwkThumbprint(pub);
  return Object.freeze({
    kid: id,
    alg,
    privateKey,
    publicJwk: Object.freeze({ ...pub, kid: id, alg, use: 'sig' }),
    source,
    generated,
  });
}

interface KeyKind {
  readonly name: string;
  readonly defaultAlg: IdentityAlg;
  fits(alg: IdentityAlg): boolean;
}

/** What the key can sign, or why it cannot be used. */
function keyKind(key: KeyObject): KeyKind | string {
  const type = key.asymmetricKeyType;
  const details = key.asymmetricKeyDetails;
  switch (type) {
    case 'ec':
      if (details?.namedCurve !== 'prime256v1') {
        return `an EC key on curve ${details?.namedCurve ?? 'unknown'}; expected P-256, Ed25519 or RSA`;
      }
      return { name: 'EC P-256', defaultAlg: 'ES256', fits: (alg) => alg === 'ES256' };
    case 'ed25519':
      return { name: 'Ed25519', defaultAlg: 'EdDSA', fits: (alg) => alg === 'EdDSA' };
    case 'rsa': {
      const bits = details?.modulusLength ?? 0;
      if (bits < 2048) return `a ${bits}-bit RSA key is too weak; at least 2048 bits`;
      return { name: `RSA ${bits}-bit`, defaultAlg: 'RS256', fits: (alg) => alg.startsWith('RS') || alg.startsWith('PS') };
    }
    default:
      return `a ${type ?? 'unknown'} key cannot sign an identity token; expected EC P-256, Ed25519 or RSA`;
  }
}
