/**
 * Certificates and keys made by the test that needs them, in its own temporary folder (tap's
 * `t.testdir()`, removed afterwards): a test CA, certificates it issues, self-signed ones, and
 * signing keys as PEM and JWK. Nothing private is ever committed. Certificates come from the
 * `openssl` command (node:crypto cannot issue them); they live for two days.
 */
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomUUID, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface Issued {
  /** PEM text. */
  readonly cert: string;
  readonly key: string;
  readonly certFile: string;
  readonly keyFile: string;
  /** The certificate's DER, base64: an `x5c` entry (RFC 7517 §4.7). */
  readonly x5c: string;
}

export interface SigningKey {
  readonly privateKey: KeyObject;
  /** The private key as PKCS#8 PEM. */
  readonly pem: string;
  /** The private JWK (with `kid` when one was asked for). */
  readonly privateJwk: JsonWebKey & { kid?: string };
  /** The public JWK, as a provider registers it. */
  readonly publicJwk: JsonWebKey & { kid?: string };
}

export interface Pki {
  readonly dir: string;
  /** A CA certificate (EC P-256). */
  ca(name: string): Issued;
  /** A certificate signed by `ca`: for a server on 127.0.0.1, or a client. */
  issue(ca: Issued, cn: string, use: 'server' | 'client'): Issued;
  /** A self-signed client certificate (RFC 8705 §2.2). */
  selfSigned(cn: string): Issued;
  signingKey(type: 'ec' | 'rsa' | 'ed25519', kid?: string): SigningKey;
  /** Writes a file in the folder; returns its path. */
  write(name: string, content: string): string;
}

export function createPki(dir: string): Pki {
  // Bounded: once in a full run a test file produced nothing until tap's 120 s timeout, with these
  // calls and key generation as its only blocking work; a stuck openssl now fails with its arguments.
  const openssl = (...args: string[]) => {
    try {
      return execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    } catch (err) {
      throw new Error(`openssl ${args.join(' ')} failed or took over 30 s`, { cause: err });
    }
  };
  const write = (name: string, content: string) => {
    const file = path.join(dir, name);
    writeFileSync(file, content, { mode: 0o600 });
    return file;
  };
  const load = (base: string): Issued => {
    const cert = readFileSync(path.join(dir, `${base}.pem`), 'utf8');
    return {
      cert,
      key: readFileSync(path.join(dir, `${base}.key`), 'utf8'),
      certFile: path.join(dir, `${base}.pem`),
      keyFile: path.join(dir, `${base}.key`),
      x5c: cert.replace(/-----(BEGIN|END) CERTIFICATE-----|\s/g, ''),
    };
  };
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];
  const unique = (name: string) => `${name.replace(/\W/g, '-')}-${randomUUID().slice(0, 8)}`;

  return {
    dir,
    ca(name) {
      const base = unique(name);
      openssl(
        'req',
        '-x509',
        ...newKey,
        '-keyout',
        `${base}.key`,
        '-out',
        `${base}.pem`,
        '-days',
        '2',
        '-subj',
        `/CN=${name}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      );
      return load(base);
    },
    issue(ca, cn, use) {
      const base = unique(cn);
      openssl('req', ...newKey, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${cn}`);
      const ext = write(
        `${base}.ext`,
        use === 'server'
          ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n'
          : 'extendedKeyUsage=clientAuth\n',
      );
      openssl(
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        ca.certFile,
        '-CAkey',
        ca.keyFile,
        '-CAcreateserial',
        '-out',
        `${base}.pem`,
        '-days',
        '2',
        '-extfile',
        ext,
      );
      return load(base);
    },
    selfSigned(cn) {
      const base = unique(cn);
      openssl('req', '-x509', ...newKey, '-keyout', `${base}.key`, '-out', `${base}.pem`, '-days', '2', '-subj', `/CN=${cn}`);
      return load(base);
    },
    signingKey(type, kid) {
      const { privateKey, publicKey } =
        type === 'ec'
          ? generateKeyPairSync('ec', { namedCurve: 'P-256' })
          : type === 'rsa'
            ? generateKeyPairSync('rsa', { modulusLength: 2048 })
            : generateKeyPairSync('ed25519');
      const withKid = (jwk: JsonWebKey) => (kid === undefined ? jwk : { ...jwk, kid });
      return {
        privateKey,
        pem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string,
        privateJwk: withKid(privateKey.export({ format: 'jwk' })),
        publicJwk: withKid(publicKey.export({ format: 'jwk' })),
      };
    },
    write,
  };
}
