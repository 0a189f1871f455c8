/**
 * A real OpenID provider (the `oidc-provider` package) on 127.0.0.1, for the demo and the tests:
 * client_credentials tokens, RFC 7662 introspection and RFC 7009 revocation turned on. Development
 * only: in-memory storage and generated keys.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Provider, { type ClientMetadata, type Configuration } from 'oidc-provider';

export interface OidcProviderOptions {
  /** Clients besides tollgate's own (`tollgate` / `tollgate-secret`) and the demo app's. */
  clients?: ClientMetadata[];
  /** Scopes a client_credentials token may carry. */
  scopes?: string[];
  /** Claims added to every access token, e.g. a `sub` for client_credentials tokens. */
  extraTokenClaims?: (clientId: string) => Record<string, unknown> | undefined;
  /** Access-token lifetime (seconds); default 3600. */
  accessTokenTtlS?: number;
  /** Anything else oidc-provider accepts, merged over the defaults. */
  configuration?: Configuration;
}

export interface OidcProvider {
  readonly issuer: string;
  readonly provider: Provider;
  /** Calls received at the introspection endpoint so far (tests count what reached a provider). */
  readonly introspections: number;
  /** While false, every request gets 503 (an outage, for tests of a provider that is down). */
  setAvailable(available: boolean): void;
  /** A client_credentials access token for `clientId`. */
  mintToken(clientId?: string, clientSecret?: string, scope?: string): Promise<string>;
  /** RFC 7009 revocation, as the client that holds the token. */
  revokeToken(token: string, clientId?: string, clientSecret?: string): Promise<void>;
  close(): Promise<void>;
}

/** The client tollgate authenticates as. */
export const TOLLGATE_CLIENT = Object.freeze({ client_id: 'tollgate', client_secret: 'tollgate-secret' });
/** A client that gets client_credentials tokens: the "application" calling the API. */
export const APP_CLIENT = Object.freeze({ client_id: 'demo-app', client_secret: 'demo-app-secret' });

export const DEFAULT_SCOPES = ['orders:read', 'orders:write', 'orders:admin'];

export async function startOidcProvider(options: OidcProviderOptions = {}): Promise<OidcProvider> {
  const scopes = options.scopes ?? DEFAULT_SCOPES;
  // The issuer names the port, so the server listens first and the provider is built after.
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const issuer = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  const provider = new Provider(issuer, {
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
      revocation: { enabled: true },
      devInteractions: { enabled: false },
    },
    ttl: { ClientCredentials: options.accessTokenTtlS ?? 3600 },
    extraTokenClaims: options.extraTokenClaims
      ? async (_ctx, token) => options.extraTokenClaims!(String((token as { clientId?: string }).clientId))
      : async () => undefined,
    ...options.configuration,
  });
  // oidc-provider logs every server error through its event emitter; tests read answers instead.
  provider.on('server_error', () => {});
  let introspections = 0;
  let available = true;
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (!available) return void res.writeHead(503, { 'content-type': 'text/plain' }).end('down\n');
    if (req.url?.startsWith('/token/introspection')) introspections++;
    return callback(req, res);
  });

  const basic = (id: string, secret: string) =>
    `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

  return {
    issuer,
    provider,
    get introspections() {
      return introspections;
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
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
