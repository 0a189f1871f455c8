/**
 * The key material a provider entry names by file (SPEC §2): the private_key_jwt signing key
 * (RFC 7523), the mutual-TLS client certificate and its key (RFC 8705), a private CA bundle.
 *
 * The files are read and parsed when a configuration is loaded (so `check-config` reports a bad
 * one by its path) and again whenever a provider is built from a configuration. A reload rebuilds
 * a provider whose files changed at the same path (a certificate renewed in place, as cert-manager
 * does): it compares `keyFilesDigest`. Their content never reaches a log line or a message:
 * problems name the file and what is wrong with it, nothing else.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject, type JsonWebKey } from 'node:crypto';
import path from 'node:path';
import * as tls from 'node:tls';
import { KEY_FILE_LIMIT_BYTES, readBoundedFile, readBoundedText } from './files.js';

/** The keys whose value is a file of key material. */
export const KEY_FILE_KEYS = ['private_key_file', 'tls_cert_file', 'tls_key_file', 'ca_file'] as const;
export type KeyFileKey = (typeof KEY_FILE_KEYS)[number];

/** What keys.ts needs of a provider entry (a ProviderConfig fits). */
export interface KeyFileSettings {
  readonly auth_method: string;
  readonly private_key_file?: string | undefined;
  readonly signing_alg?: string | undefined;
  readonly tls_cert_file?: string | undefined;
  readonly tls_key_file?: string | undefined;
  readonly ca_file?: string | undefined;
}

/** The private_key_jwt signing key, checked against its algorithm. */
export interface ClientSigningKey {
  readonly key: KeyObject;
  /** The JWK's `kid`, sent in the assertion's header so the provider picks the right key; PEM has none. */
  readonly kid: string | undefined;
  /** JWS algorithm of the client assertion (RFC 7518 name). */
  readonly alg: SigningAlg;
}

/** TLS options for the connections to one provider (node:tls / undici `connect`). */
export interface ProviderTls {
  /** The system CAs plus the provider's `ca_file` (SPEC §2: it adds to them, never replaces them). */
  readonly ca?: readonly string[];
  /** The client certificate chain (PEM), leaf first. */
  readonly cert?: string;
  readonly key?: string;
}

export interface ProviderKeys {
  readonly signingKey: ClientSigningKey | undefined;
  readonly tls: ProviderTls | undefined;
}

export type KeyProblem = (key: KeyFileKey | 'signing_alg', message: string) => void;

/** JWS algorithms a client assertion may use, and the key each one needs. */
export const SIGNING_ALGS = {
  RS256: { kty: 'rsa' },
  RS384: { kty: 'rsa' },
  RS512: { kty: 'rsa' },
  PS256: { kty: 'rsa' },
  PS384: { kty: 'rsa' },
  PS512: { kty: 'rsa' },
  ES256: { kty: 'ec', curve: 'prime256v1' },
  ES384: { kty: 'ec', curve: 'secp384r1' },
  ES512: { kty: 'ec', curve: 'secp521r1' },
  EdDSA: { kty: 'ed25519' },
  Ed25519: { kty: 'ed25519' },
} as const satisfies Record<string, { kty: string; curve?: string }>;
export type SigningAlg = keyof typeof SIGNING_ALGS;

const isSigningAlg = (alg: unknown): alg is SigningAlg => typeof alg === 'string' && Object.hasOwn(SIGNING_ALGS, alg);

/** Relative key file paths start where the configuration file (or providers_dir file) is. */
export function resolveKeyFilePaths(provider: Record<string, unknown>, baseDir: string): void {
  for (const key of KEY_FILE_KEYS) {
    const file = provider[key];
    if (typeof file === 'string' && file !== '') provider[key] = path.resolve(baseDir, file);
  }
}

/**
 * SHA-256 over the contents of the provider's key files, the files unread otherwise: equal as long
 * as no file changed. A file that cannot be read counts as changed (the reload's validation then
 * names it).
 */
export function keyFilesDigest(settings: KeyFileSettings): string {
  const hash = createHash('sha256');
  for (const key of KEY_FILE_KEYS) {
    const file = settings[key];
    if (file === undefined) continue;
    hash.update(`${key}\0`);
    // Bounded, regular files only: a FIFO dropped in place of a key must not freeze a reload.
    const read = readBoundedFile(file, KEY_FILE_LIMIT_BYTES);
    hash.update(read.ok ? read.bytes : `\0unreadable: ${read.reason}`);
    hash.update('\0');
  }
  return hash.digest('base64url');
}

/**
 * Reads and parses every key file of one provider. Every problem goes to `problem` with the key it
 * belongs to; the result is undefined when there was any.
 */
export function readProviderKeys(settings: KeyFileSettings, problem: KeyProblem): ProviderKeys | undefined {
  let failed = false;
  const fail: KeyProblem = (key, message) => {
    failed = true;
    problem(key, message);
  };
  const read = (key: KeyFileKey): string | undefined => {
    const file = settings[key];
    if (file === undefined) return undefined;
    const read = readBoundedText(file, KEY_FILE_LIMIT_BYTES);
    if (read.ok) return read.text;
    fail(key, `cannot read ${file}: ${read.reason}`);
    return undefined;
  };

  let signingKey: ClientSigningKey | undefined;
  const privateKeyText = settings.auth_method === 'private_key_jwt' ? read('private_key_file') : undefined;
  if (privateKeyText !== undefined) signingKey = parseSigningKey(privateKeyText, settings.signing_alg, fail);

  let tlsOptions: { ca?: string[]; cert?: string; key?: string } | undefined;
  const caText = read('ca_file');
  if (caText !== undefined) {
    const certs = parseCertificates(caText);
    if (certs === undefined) fail('ca_file', 'not a PEM certificate bundle');
    else tlsOptions = { ca: [...systemCertificates(), ...certs.map((c) => c.pem)] };
  }
  const certText = read('tls_cert_file');
  const keyText = read('tls_key_file');
  if (certText !== undefined && keyText !== undefined) {
    const chain = parseCertificates(certText);
    const key = parsePrivateKey(keyText);
    if (chain === undefined) fail('tls_cert_file', 'not a PEM certificate');
    if (key === undefined) fail('tls_key_file', 'not a PEM private key');
    if (chain !== undefined && key !== undefined) {
      const leaf = chain[0]!.x509;
      if (!leaf.checkPrivateKey(key)) fail('tls_key_file', 'does not belong to the certificate in tls_cert_file');
      else if (Date.parse(leaf.validTo) < Date.now()) fail('tls_cert_file', `the certificate expired on ${leaf.validTo}`);
      else tlsOptions = { ...tlsOptions, cert: chain.map((c) => c.pem).join(''), key: keyText };
    }
  }
  return failed ? undefined : Object.freeze({ signingKey, tls: tlsOptions && Object.freeze(tlsOptions) });
}

/** Like readProviderKeys, but throws one error naming every problem (for code that builds a provider). */
export function readProviderKeysOrThrow(settings: KeyFileSettings & { readonly name: string }): ProviderKeys {
  const problems: string[] = [];
  const keys = readProviderKeys(settings, (key, message) => problems.push(`${key}: ${message}`));
  if (keys === undefined) throw new Error(`provider ${settings.name}: ${problems.join('; ')}`);
  return keys;
}

/**
 * The CAs Node trusts by default: on Node 22.15+ with NODE_EXTRA_CA_CERTS (and --use-system-ca)
 * included, on older versions the bundled Mozilla store (`tls.rootCertificates`), which is what
 * they trust by default too, NODE_EXTRA_CA_CERTS aside.
 */
function systemCertificates(): readonly string[] {
  const get = (tls as { getCACertificates?: (type?: 'default') => string[] }).getCACertificates;
  return typeof get === 'function' ? get('default') : tls.rootCertificates;
}

/** A PEM private key (PKCS#8, PKCS#1 or SEC1), a JWK, or a JWK Set holding exactly one key. */
function parseSigningKey(text: string, configuredAlg: string | undefined, fail: KeyProblem): ClientSigningKey | undefined {
  let key: KeyObject | undefined;
  let kid: string | undefined;
  let jwkAlg: unknown;
  if (text.trimStart().startsWith('{')) {
    let jwk: (JsonWebKey & { kid?: unknown; alg?: unknown }) | undefined;
    try {
      const parsed = JSON.parse(text) as { keys?: unknown };
      jwk = (Array.isArray(parsed.keys) && parsed.keys.length === 1 ? parsed.keys[0] : parsed) as typeof jwk;
      key = createPrivateKey({ key: jwk!, format: 'jwk' });
    } catch {
      key = undefined;
    }
    if (typeof jwk?.kid === 'string') kid = jwk.kid;
    jwkAlg = jwk?.alg;
  } else {
    key = parsePrivateKey(text);
  }
  if (key === undefined) {
    fail('private_key_file', 'not a PEM or JWK private key');
    return undefined;
  }
  const kty = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (configuredAlg !== undefined && !isSigningAlg(configuredAlg)) {
    fail('signing_alg', `expected one of ${Object.keys(SIGNING_ALGS).join(', ')}`);
    return undefined;
  }
  if (configuredAlg !== undefined && jwkAlg !== undefined && jwkAlg !== configuredAlg) {
    fail('signing_alg', `the key in private_key_file is for ${typeof jwkAlg === 'string' ? jwkAlg : 'another algorithm'}`);
    return undefined;
  }
  if (configuredAlg === undefined && jwkAlg !== undefined && !isSigningAlg(jwkAlg)) {
    fail('private_key_file', `the key's alg is not one of ${Object.keys(SIGNING_ALGS).join(', ')}`);
    return undefined;
  }
  const alg = configuredAlg ?? (isSigningAlg(jwkAlg) ? jwkAlg : defaultAlg(kty, curve));
  if (alg === undefined) {
    fail('private_key_file', `a ${kty}${curve ? ` ${curve}` : ''} key cannot sign a client assertion`);
    return undefined;
  }
  const need: { kty: string; curve?: string } = SIGNING_ALGS[alg];
  if (need.kty !== (kty === 'rsa-pss' ? 'rsa' : kty) || (need.curve !== undefined && need.curve !== curve)) {
    fail(
      configuredAlg === undefined ? 'private_key_file' : 'signing_alg',
      `${alg} needs another kind of key than the one in private_key_file`,
    );
    return undefined;
  }
  return Object.freeze({ key, kid, alg });
}

function defaultAlg(kty: string | undefined, curve: string | undefined): SigningAlg | undefined {
  if (kty === 'rsa') return 'RS256';
  if (kty === 'rsa-pss') return 'PS256';
  if (kty === 'ed25519') return 'EdDSA';
  if (kty === 'ec')
    return curve === 'prime256v1' ? 'ES256' : curve === 'secp384r1' ? 'ES384' : curve === 'secp521r1' ? 'ES512' : undefined;
  return undefined;
}

/** A PEM private key (PKCS#8, PKCS#1 or SEC1); undefined for anything else, an encrypted PEM among them. */
export function parsePrivateKey(text: string): KeyObject | undefined {
  if (!text.includes('-----BEGIN')) return undefined;
  try {
    return createPrivateKey({ key: text, format: 'pem' });
  } catch {
    // An encrypted PEM lands here too: tollgate takes no passphrase, the key must be stored decrypted.
    return undefined;
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate of a PEM bundle, or undefined when there is none or one does not parse. */
function parseCertificates(text: string): { pem: string; x509: X509Certificate }[] | undefined {
  const blocks = text.match(PEM_CERTIFICATE);
  if (blocks === null) return undefined;
  try {
    return blocks.map((pem) => ({ pem: `${pem}\n`, x509: new X509Certificate(pem) }));
  } catch {
    return undefined;
  }
}
