/**
 * A real OpenID provider (the `oidc-provider` package) on 127.0.0.1, for the demo and the tests:
 * client_credentials tokens, RFC 7662 introspection (signed answers too, RFC 9701) and RFC 7009
 * revocation turned on. Over HTTPS it also authenticates clients by certificate (RFC 8705).
 * Development only: in-memory storage and generated keys.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { TLSSocket } from 'node:tls';
import Provider, { type ClientMetadata, type Configuration, type JWK } from 'oidc-provider';
import { Agent, fetch as undiciFetch } from 'undici';

export interface OidcProviderOptions {
  /** Clients besides tollgate's own (`tollgate` / `tollgate-secret`) and the demo app's. */
  clients?: ClientMetadata[];
  /** Scopes a client_credentials token may carry. */
  scopes?: string[];
  /** Claims added to every access token, e.g. a `sub` for client_credentials tokens. */
  extraTokenClaims?: (clientId: string) => Record<string, unknown> | undefined;
  /** Access-token lifetime (seconds); default 3600. */
  accessTokenTtlS?: number;
  /**
   * Serve HTTPS with this certificate (PEM), and ask every client for a certificate, which must
   * chain to `ca` for `tls_client_auth` (self-signed ones serve `self_signed_tls_client_auth`).
   * Needed for mutual TLS; the issuer is then `https://127.0.0.1:PORT`.
   */
  https?: { cert: string; key: string; ca: string };
  /**
   * With `https`: ask for client certificates only on a second listener, advertised as the
   * introspection endpoint's RFC 8705 `mtls_endpoint_aliases`; the main one asks for none.
   */
  mtlsAlias?: boolean;
  /**
   * Issue JWT access tokens (RFC 9068) for this audience, signed with `alg`: resource indicators
   * (RFC 8707) with the audience as every client_credentials token's default resource.
   */
  jwtAccessTokens?: { audience: string; alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA' };
  /** The signing keys (private JWKs with `kid`); default: oidc-provider's development keys. */
  keys?: JWK[];
  /** Anything else oidc-provider accepts, merged over the defaults (`features` merged feature by feature). */
  configuration?: Configuration;
}

export interface OidcProvider {
  readonly issuer: string;
  /** With `mtlsAlias`: the introspection endpoint that asks for a client certificate. */
  readonly mtlsIntrospectionEndpoint: string | undefined;
  /** The provider serving now (rotateKeys builds a new one). */
  readonly provider: Provider;
  /** Calls received at the introspection endpoint so far (tests count what reached a provider). */
  readonly introspections: number;
  /** GETs of the JWKS endpoint so far (tests count what local JWT verification costs a provider). */
  readonly jwksFetches: number;
  /**
   * Key rotation: from now on the provider signs with the first key of `keys` of each algorithm and
   * publishes exactly `keys` (keep the old key in the list while its tokens live).
   */
  rotateKeys(keys: JWK[]): void;
  /** While false, every request gets 503 (an outage, for tests of a provider that is down). */
  setAvailable(available: boolean): void;
  /** A client_credentials access token for `clientId`. */
  mintToken(clientId?: string, clientSecret?: string, scope?: string): Promise<string>;
  /** RFC 7009 revocation, as the client that holds the token. */
  revokeToken(token: string, clientId?: string, clientSecret?: string): Promise<void>;
  close(): Promise<void>;
}

/** Fresh private JWKs: one for `alg`, and the RS256 key oidc-provider always needs (ID tokens). */
export function signingKeys(alg: 'RS256' | 'PS256' | 'ES256' | 'EdDSA'): JWK[] {
  const jwk = (key: KeyObject, kid: string) => ({ ...(key.export({ format: 'jwk' }) as JWK), kid, use: 'sig' });
  const rsa = jwk(generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey, 'rsa-1');
  if (alg === 'ES256') return [jwk(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey, 'ec-1'), rsa];
  if (alg === 'EdDSA') return [jwk(generateKeyPairSync('ed25519').privateKey, 'ed-1'), rsa];
  return [rsa];
}

/** The client tollgate authenticates as. */
export const TOLLGATE_CLIENT = Object.freeze({ client_id: 'tollgate', client_secret: 'tollgate-secret' });
/** A client that gets client_credentials tokens: the "application" calling the API. */
export const APP_CLIENT = Object.freeze({ client_id: 'demo-app', client_secret: 'demo-app-secret' });

export const DEFAULT_SCOPES = ['orders:read', 'orders:write', 'orders:admin'];

export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<OidcProvider> {
  const scopes = options.scopes ?? DEFAULT_SCOPES;
  const tls = options.https;
  // Client certificates are verified against the test CA but not required at the handshake: the
  // provider decides per client (certificateAuthorized below), as RFC 8705 servers do.
  const serve = (askCertificate: boolean): Server =>
    tls === undefined
      ? createServer()
      : createHttpsServer({ cert: tls.cert, key: tls.key, ca: tls.ca, requestCert: askCertificate, rejectUnauthorized: false });
  const listen = async (s: Server) => {
    await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
    return `${tls === undefined ? 'http' : 'https'}://127.0.0.1:${(s.address() as AddressInfo).port}`;
  };
  // The issuer names the port, so the server listens first and the provider is built after.
  const server: Server = serve(options.mtlsAlias !== true);
  const issuer = await listen(server);
  const aliasServer = tls !== undefined && options.mtlsAlias === true ? serve(true) : undefined;
  const aliasOrigin = aliasServer === undefined ? undefined : await listen(aliasServer);
  const mtlsIntrospectionEndpoint = aliasOrigin === undefined ? undefined : `${aliasOrigin}/token/introspection`;
  const peerCertificate = (ctx: { socket: unknown }) => {
    const socket = ctx.socket as Partial<TLSSocket>;
    return typeof socket.getPeerX509Certificate === 'function' ? socket.getPeerX509Certificate() : undefined;
  };
  const { features: extraFeatures, ...configuration }: Configuration = options.configuration ?? {};

  const jwtTokens = options.jwtAccessTokens;
  const build = (keys: JWK[] | undefined) =>
    new Provider(issuer, {
      ...(keys === undefined ? {} : { jwks: { keys } }),
      clients: [
        { ...TOLLGATE_CLIENT, grant_types: [], response_types: [], redirect_uris: [] },
        {
          ...APP_CLIENT,
          grant_types: ['client_credentials'],
          response_types: [],
          redirect_uris: [],
          scope: scopes.join(' '),
        },
        ...(options.clients ?? []),
      ],
      scopes,
      features: {
        clientCredentials: { enabled: true },
        introspection: { enabled: true },
        // Signs an answer only for a client registered with introspection_signed_response_alg that asks for one.
        jwtIntrospection: { enabled: true },
        revocation: { enabled: true },
        devInteractions: { enabled: false },
        ...(jwtTokens === undefined
          ? {}
          : {
              resourceIndicators: {
                enabled: true,
                defaultResource: async () => jwtTokens.audience,
                getResourceServerInfo: async () => ({
                  scope: scopes.join(' '),
                  audience: jwtTokens.audience,
                  accessTokenFormat: 'jwt',
                  jwt: { sign: { alg: jwtTokens.alg } },
                }),
              },
            }),
        ...(tls === undefined
          ? {}
          : {
              mTLS: {
                enabled: true,
                tlsClientAuth: true,
                selfSignedTlsClientAuth: true,
                getCertificate: (ctx) => peerCertificate(ctx),
                certificateAuthorized: (ctx) => (ctx.socket as TLSSocket).authorized === true,
                // Only the subject DN is used by the tests' clients; X509Certificate writes it one RDN a line.
                certificateSubjectMatches: (ctx, property, expected) =>
                  property === 'tls_client_auth_subject_dn' && peerCertificate(ctx)?.subject.split('\n').join(',') === expected,
              },
            }),
        ...extraFeatures,
        // @types/oidc-provider's feature unions cannot follow the spreads above.
      } as NonNullable<Configuration['features']>,
      clientAuthMethods: [
        'client_secret_basic',
        'client_secret_jwt',
        'client_secret_post',
        'private_key_jwt',
        'none',
        ...(tls === undefined ? [] : (['tls_client_auth', 'self_signed_tls_client_auth'] as const)),
      ],
      ...(mtlsIntrospectionEndpoint === undefined
        ? {}
        : { discovery: { mtls_endpoint_aliases: { introspection_endpoint: mtlsIntrospectionEndpoint } } }),
      ttl: { ClientCredentials: options.accessTokenTtlS ?? 3600 },
      extraTokenClaims: options.extraTokenClaims
        ? async (_ctx, token) => options.extraTokenClaims!(String((token as { clientId?: string }).clientId))
        : async () => undefined,
      ...configuration,
    });
  // oidc-provider's development keys hold no EC key: a JWT signer gets keys of its own.
  let provider = build(options.keys ?? (jwtTokens === undefined ? undefined : signingKeys(jwtTokens.alg)));
  // oidc-provider logs every server error through its event emitter; tests read answers instead.
  provider.on('server_error', () => {});
  let introspections = 0;
  let jwksFetches = 0;
  let available = true;
  let callback = provider.callback();
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    if (!available) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('down\n');
    if (req.url?.startsWith('/token/introspection')) introspections++;
    if (req.url?.startsWith('/jwks')) jwksFetches++;
    return callback(req, res);
  };
  server.on('request', handle);
  aliasServer?.on('request', handle);
  // mintToken and revokeToken trust the test CA, like a client of this provider would.
  const dispatcher = tls === undefined ? undefined : new Agent({ connect: { ca: tls.ca } });
  const fetch = (url: string, init: { method: string; headers: Record<string, string>; body: URLSearchParams }) =>
    undiciFetch(url, { ...init, ...(dispatcher === undefined ? {} : { dispatcher }) });

  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  const stop = (s: Server) =>
    new Promise<void>((resolve) => {
      s.closeAllConnections();
      s.close(() => resolve());
    });

  return {
    issuer,
    mtlsIntrospectionEndpoint,
    get provider() {
      return provider;
    },
    get introspections() {
      return introspections;
    },
    get jwksFetches() {
      return jwksFetches;
    },
    rotateKeys(keys) {
      // A provider's keys are fixed when it is built: a new one, same issuer, same in-memory storage.
      provider = build(keys);
      provider.on('server_error', () => {});
      callback = provider.callback();
    },
    setAvailable(up) {
      available = up;
    },
    async mintToken(clientId = APP_CLIENT.client_id, clientSecret = APP_CLIENT.client_secret, scope = 'orders:read') {
      const res = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { authorization: basic(clientId, clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'client_credentials', scope }),
      });
      const body = (await res.json()) as { access_token?: string; error?: string; error_description?: string };
      if (!res.ok || body.access_token === undefined)
        throw new Error(`token request failed: ${res.status} ${body.error} ${body.error_description}`);
      return body.access_token;
    },
    async revokeToken(token, clientId = APP_CLIENT.client_id, clientSecret = APP_CLIENT.client_secret) {
      const res = await fetch(`${issuer}/token/revocation`, {
        method: 'POST',
        headers: { authorization: basic(clientId, clientSecret), 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token, token_type_hint: 'access_token' }),
      });
      if (!res.ok) throw new Error(`revocation failed: ${res.status}`);
    },
    async close() {
      await Promise.all([stop(server), aliasServer === undefined ? undefined : stop(aliasServer), dispatcher?.close()]);
    },
  };
}
