/**
 * Glewlwyd (Debian's `glewlwyd` package, 2.7.5 on Debian 12): a second real OpenID provider, one
 * nobody here wrote. Started per test file on a free loopback port over HTTPS with a certificate
 * from a fresh private CA, on its own sqlite database built from the schema script the package
 * ships, and stopped by its PID. Its OIDC plugin, scopes and clients are created through its own
 * admin API, as an operator would, logged in as the package's default administrator.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { Agent, request } from 'undici';
import { createPki, type Issued } from './pki.js';

export const GLEWLWYD_BIN = '/usr/bin/glewlwyd';
/**
 * The package's schema script (with the default administrator): the documentation's copy, or the
 * one dbconfig-common installs from, for images that drop /usr/share/doc.
 */
const SCHEMAS = [
  '/usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz',
  '/usr/share/dbconfig-common/data/glewlwyd/install/sqlite3',
];
const schemaScript = (): string | undefined => SCHEMAS.find((f) => existsSync(f));
const MODULES = '/usr/lib/glewlwyd';
/** The package's default administrator (its database script creates it). */
const ADMIN = { username: 'admin', password: 'password' };
/** Scopes created at start; a client_credentials token may carry them. */
export const GLEWLWYD_SCOPES = ['orders.read', 'orders.admin'] as const;

/** Why Glewlwyd cannot run here, or undefined when it can. */
export function glewlwydMissing(): string | undefined {
  if (!existsSync(GLEWLWYD_BIN)) return `${GLEWLWYD_BIN} not found (apt-get install glewlwyd)`;
  if (schemaScript() === undefined) return `none of ${SCHEMAS.join(', ')} found (the glewlwyd package ships them)`;
  try {
    execFileSync('sqlite3', ['-version'], { stdio: 'ignore', timeout: 10_000 });
  } catch {
    return 'sqlite3 not found (apt-get install sqlite3): it builds the database from the schema script';
  }
  return undefined;
}

export interface GlewlwydClient {
  readonly client_id: string;
  readonly secret: string;
}

export interface Glewlwyd {
  /** `https://127.0.0.1:PORT/api/oidc`, as its metadata names it (no trailing `/`). */
  readonly issuer: string;
  /** The private CA its TLS certificate chains to (tollgate's `ca_file`). */
  readonly ca: Issued;
  /** A confidential client allowed `client_credentials` with both secret methods. */
  addClient(clientId: string, secret: string, scopes?: readonly string[]): Promise<GlewlwydClient>;
  /** A client_credentials access token (a JWT) for `client`, with these scopes. */
  mintToken(client: GlewlwydClient, scopes?: readonly string[]): Promise<string>;
  /** RFC 7009 revocation, by the client that holds the token. */
  revoke(client: GlewlwydClient, token: string): Promise<void>;
  /** RFC 7662 as Glewlwyd answers it, with client_secret_post. */
  introspect(client: GlewlwydClient, token: string): Promise<Record<string, unknown>>;
  /** Its log file, for failure messages. */
  logTail(): string;
  close(): Promise<void>;
}

/** A port free on 127.0.0.1 now (Glewlwyd takes a port number, not 0). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export async function startGlewlwyd(dir: string): Promise<Glewlwyd> {
  const pki = createPki(dir);
  const ca = pki.ca('glewlwyd-test-ca');
  const tls = pki.issue(ca, '127.0.0.1', 'server');
  const db = path.join(dir, 'glewlwyd.sqlite3');
  const schema = schemaScript()!;
  const script = schema.endsWith('.gz') ? gunzipSync(readFileSync(schema)) : readFileSync(schema);
  execFileSync('sqlite3', [db], { input: script, stdio: ['pipe', 'ignore', 'pipe'], timeout: 30_000 });
  const port = await freePort();
  const base = `https://127.0.0.1:${port}`;
  const issuer = `${base}/api/oidc`;
  const logFile = path.join(dir, 'glewlwyd.log');
  const config = path.join(dir, 'glewlwyd.conf');
  writeFileSync(
    config,
    [
      `port=${port}`,
      'bind_address="127.0.0.1"',
      `external_url="${base}"`,
      'login_url="login.html"',
      'api_prefix="api"',
      'log_mode="file"',
      'log_level="INFO"',
      `log_file="${logFile}"`,
      'cookie_secure=0',
      'session_expiration=3600',
      'session_key="GLEWLWYD2_SESSION_ID"',
      'admin_scope="g_admin"',
      'profile_scope="g_profile"',
      `user_module_path="${MODULES}/user"`,
      `client_module_path="${MODULES}/client"`,
      `user_auth_scheme_module_path="${MODULES}/scheme"`,
      `plugin_module_path="${MODULES}/plugin"`,
      'use_secure_connection=true',
      `secure_connection_key_file="${tls.keyFile}"`,
      `secure_connection_pem_file="${tls.certFile}"`,
      'hash_algorithm="SHA512"',
      `database = { type = "sqlite3"; path = "${db}"; };`,
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(GLEWLWYD_BIN, [`--config-file=${config}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const logTail = () => {
    const log = existsSync(logFile) ? readFileSync(logFile, 'utf8') : '';
    return `${log.split('\n').slice(-20).join('\n')}${stderr}`;
  };
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };

  const agent = new Agent({ connect: { ca: ca.cert } });
  const call = async (
    method: 'GET' | 'POST',
    pathname: string,
    options: { json?: unknown; form?: Record<string, string>; cookie?: string; basic?: GlewlwydClient } = {},
  ) => {
    const headers: Record<string, string> = {};
    let body: string | undefined;
    if (options.json !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.json);
    } else if (options.form !== undefined) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(options.form).toString();
    }
    if (options.cookie !== undefined) headers.cookie = options.cookie;
    if (options.basic !== undefined) {
      headers.authorization = `Basic ${Buffer.from(`${options.basic.client_id}:${options.basic.secret}`).toString('base64')}`;
    }
    const res = await request(`${base}/api${pathname}`, {
      method,
      headers,
      body,
      dispatcher: agent,
      headersTimeout: 10_000,
      bodyTimeout: 10_000,
    });
    const text = await res.body.text();
    return { status: res.statusCode, text, headers: res.headers };
  };
  const expectOk = (what: string, res: { status: number; text: string }) => {
    if (res.status !== 200) throw new Error(`glewlwyd: ${what} answered ${res.status} ${res.text}\n${logTail()}`);
  };

  try {
    // Up once it answers anything (bounded; a failed start says why from its own log).
    const deadline = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`glewlwyd exited with ${child.exitCode}:\n${logTail()}`);
      try {
        await call('GET', '/');
        break;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`glewlwyd did not answer within 15 s:\n${logTail()}`, { cause: err });
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    const login = await call('POST', '/auth/', { json: ADMIN });
    expectOk('the administrator login', login);
    const setCookie = login.headers['set-cookie'];
    const cookie = (Array.isArray(setCookie) ? setCookie : [setCookie ?? ''])
      .map((c) => c.split(';')[0])
      .filter(Boolean)
      .join('; ');
    const admin = (pathname: string, json: unknown) => call('POST', pathname, { json, cookie });

    // The OIDC plugin: RS256 JWT access tokens, client_credentials, introspection and revocation.
    const signing = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expectOk(
      'creating the OIDC plugin',
      await admin('/mod/plugin/', {
        module: 'oidc',
        name: 'oidc',
        display_name: 'OIDC',
        enabled: true,
        parameters: {
          iss: issuer,
          'jwt-type': 'rsa',
          'jwt-key-size': '256',
          key: signing.privateKey.export({ format: 'pem', type: 'pkcs8' }),
          cert: signing.publicKey.export({ format: 'pem', type: 'spki' }),
          'access-token-duration': 3600,
          'refresh-token-duration': 3600,
          'code-duration': 600,
          'allow-non-oidc': true,
          'auth-type-client-enabled': true,
          'auth-type-code-enabled': true,
          'introspection-revocation-allowed': true,
          'introspection-revocation-allow-target-client': true,
          'allowed-scope': ['openid', ...GLEWLWYD_SCOPES],
        },
      }),
    );
    for (const name of GLEWLWYD_SCOPES) {
      expectOk(
        `creating scope ${name}`,
        await admin('/scope/', { name, display_name: name, description: name, password_required: false, scheme: {} }),
      );
    }

    return {
      issuer,
      ca,
      async addClient(clientId, secret, scopes = GLEWLWYD_SCOPES) {
        expectOk(
          `creating client ${clientId}`,
          await admin('/client/', {
            client_id: clientId,
            name: clientId,
            confidential: true,
            // Stored as given (a `password` would be hashed, but Glewlwyd 2.7's OIDC plugin then
            // refuses the client); both secret methods are allowed, as the tests try each.
            client_secret: secret,
            token_endpoint_auth_method: ['client_secret_basic', 'client_secret_post'],
            authorization_type: ['client_credentials'],
            scope: [...scopes],
            redirect_uri: [],
            enabled: true,
          }),
        );
        return { client_id: clientId, secret };
      },
      async mintToken(client, scopes = ['orders.read']) {
        const res = await call('POST', '/oidc/token', {
          basic: client,
          form: { grant_type: 'client_credentials', scope: scopes.join(' ') },
        });
        expectOk(`a token for ${client.client_id}`, res);
        return (JSON.parse(res.text) as { access_token: string }).access_token;
      },
      async revoke(client, token) {
        expectOk(
          'revocation',
          await call('POST', '/oidc/revoke', { basic: client, form: { token, token_type_hint: 'access_token' } }),
        );
      },
      async introspect(client, token) {
        const res = await call('POST', '/oidc/introspect', {
          form: { token, token_type_hint: 'access_token', client_id: client.client_id, client_secret: client.secret },
        });
        expectOk('introspection', res);
        return JSON.parse(res.text) as Record<string, unknown>;
      },
      logTail,
      async close() {
        await agent.close();
        await stop();
      },
    };
  } catch (err) {
    await agent.close();
    await stop();
    throw err;
  }
}
