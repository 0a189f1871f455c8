/**
 * A scriptable introspection provider, for the answers a real one won't give: 500s, garbage,
 * slowness, odd claims. It serves discovery metadata, counts every introspection call and the
 * calls in flight, and answers as the test's script says.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROBE_TOKEN_PREFIX } from '../../src/provider/probe.js';

export type Script = (token: string, req: IncomingMessage, res: ServerResponse) => void | Promise<void>;

export interface FakeProvider {
  readonly issuer: string;
  readonly introspectionEndpoint: string;
  /** Tokens introspected, in order (test data only; empty with `record: false`), every tenant's included. */
  readonly calls: string[];
  /** Introspection calls received (counted with `record: false` too). */
  readonly callCount: number;
  /**
   * The issuer of tenant `name` on this same server (`<issuer>/t/<name>`), with its own discovery
   * metadata and introspection endpoint: many providers, one process.
   */
  tenantIssuer(name: string): string;
  /** Tokens introspected at tenant `name`'s endpoint, in order. */
  tenantCalls(name: string): string[];
  /** The Authorization header of each call. */
  readonly authorizations: (string | undefined)[];
  /** Each call's form body (client_id, client_assertion…; test data only), Content-Type and Accept. */
  readonly requests: { body: URLSearchParams; contentType: string | undefined; accept: string | undefined }[];
  /**
   * tollgate's credential probes (a random token it introspects once a provider is found), kept
   * apart from the calls above: the Authorization header of each. They are answered by
   * `probeScript`, by default as a provider answers a token it never issued.
   */
  readonly probes: (string | undefined)[];
  /** Answers the credential probes as the script says (a 401 for credentials it refuses…). */
  probeScript(fn: Script): void;
  /** Most calls ever in flight at once. */
  readonly maxInFlight: number;
  /** GETs of `/jwks` received so far (with the `jwks` option). */
  readonly jwksFetches: number;
  /** While false, `/jwks` answers 503 (a key endpoint that is down). */
  setJwksAvailable(available: boolean): void;
  /** Answers every call with this JSON object. */
  answer(claims: (token: string) => Record<string, unknown> | Promise<Record<string, unknown>>): void;
  /** Answers every call as the script says (status, body, delay, hang…). */
  script(fn: Script): void;
  close(): Promise<void>;
}

export interface FakeProviderOptions {
  /**
   * Serve discovery metadata (default true): `true` or `'oidc'` at
   * `/.well-known/openid-configuration`, `'oauth2'` only at RFC 8414's
   * `/.well-known/oauth-authorization-server`, `false` not at all.
   */
  discovery?: boolean | 'oidc' | 'oauth2';
  /** Publish this JWK Set at `/jwks` (advertised as `jwks_uri`), to verify signed answers against. */
  jwks?: { keys: Record<string, unknown>[] };
  /**
   * The `issuer` the metadata names, from the one it is served for (default: that one): a
   * provider whose metadata disagrees with the issuer tollgate was given.
   */
  metadataIssuer?: (base: string) => string;
  /** Keep every token, form and header of each call (default true); benchmarks only count. */
  record?: boolean;
}

export async function startFakeProvider(options: FakeProviderOptions = {}): Promise<FakeProvider> {
  const calls: string[] = [];
  const byTenant = new Map<string, string[]>();
  const authorizations: (string | undefined)[] = [];
  let callCount = 0;
  const requests: FakeProvider['requests'] = [];
  const discovery = options.discovery ?? true;
  const metadataPath =
    discovery === 'oauth2'
      ? '/.well-known/oauth-authorization-server'
      : discovery === false
        ? null
        : '/.well-known/openid-configuration';
  let inFlight = 0;
  let maxInFlight = 0;
  let jwksFetches = 0;
  let jwksAvailable = true;
  let issuer = '';
  let script: Script = (_token, _req, res) => json(res, 200, { active: false });
  let probeScript: Script = (_token, _req, res) => json(res, 200, { active: false });
  const probes: (string | undefined)[] = [];

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', issuer);
    const tenant = /^\/t\/([^/]+)\//.exec(url.pathname)?.[1];
    const base = tenant === undefined ? issuer : `${issuer}/t/${tenant}`;
    const rest = tenant === undefined ? url.pathname : url.pathname.slice(`/t/${tenant}`.length);
    if (rest === metadataPath) {
      return json(res, 200, {
        issuer: options.metadataIssuer?.(base) ?? base,
        introspection_endpoint: `${base}/introspect`,
        token_endpoint: `${base}/token`,
        ...(options.jwks === undefined ? {} : { jwks_uri: `${issuer}/jwks` }),
      });
    }
    if (url.pathname === '/jwks' && options.jwks !== undefined) {
      jwksFetches++;
      // Read at each request: a test rotates keys by changing the set it passed in.
      return jwksAvailable ? json(res, 200, options.jwks) : json(res, 503, { error: 'down' });
    }
    if (rest !== '/introspect' || req.method !== 'POST') return json(res, 404, { error: 'not_found' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const form = new URLSearchParams(Buffer.concat(chunks).toString());
      const token = form.get('token') ?? '';
      if (token.startsWith(PROBE_TOKEN_PREFIX)) {
        probes.push(req.headers.authorization);
        void Promise.resolve(probeScript(token, req, res)).catch((err: unknown) => res.destroy(err as Error));
        return;
      }
      callCount++;
      if (options.record !== false) {
        calls.push(token);
        if (tenant !== undefined) byTenant.set(tenant, [...(byTenant.get(tenant) ?? []), token]);
        authorizations.push(req.headers.authorization);
        requests.push({ body: form, contentType: req.headers['content-type'], accept: req.headers.accept });
      }
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      res.on('close', () => inFlight--);
      void Promise.resolve(script(token, req, res)).catch((err: unknown) => {
        res.destroy(err as Error);
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  return {
    issuer,
    introspectionEndpoint: `${issuer}/introspect`,
    calls,
    tenantIssuer: (name) => `${issuer}/t/${name}`,
    tenantCalls: (name) => byTenant.get(name) ?? [],
    authorizations,
    get callCount() {
      return callCount;
    },
    requests,
    get maxInFlight() {
      return maxInFlight;
    },
    get jwksFetches() {
      return jwksFetches;
    },
    setJwksAvailable(available) {
      jwksAvailable = available;
    },
    answer(claims) {
      script = async (token, _req, res) => json(res, 200, await claims(token));
    },
    script(fn) {
      script = fn;
    },
    probes,
    probeScript(fn) {
      probeScript = fn;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function json(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) }).end(text);
}
