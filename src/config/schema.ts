/**
 * The configuration file's shape (SPEC §2): keys in their wire spelling, defaults, units.
 * Validation is pure: a raw tree in, a typed configuration or a list of problems out. Reading
 * files and the environment happens before, in load.ts; compiling for the request path after, in
 * runtime.ts. `npm run schema` publishes this as JSON Schema for editors (config/tollgate.schema.json).
 */
import { z } from 'zod';
import { checkJwtProvider, jwtSchema } from './jwt-schema.js';
import { IDENTITY_ALGS } from '../identity/keys.js';
import { OWN_HEADERS } from './own-headers.js';

const PROVIDER_NAME = /^[a-z0-9-]{1,40}$/;
/** RFC 9110 §5.1 field-name (token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHOD = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * zod skips an object's refinements once one of its fields has failed; ours are written to read a
 * partly valid object, so they run whenever there is an object at all: every problem in one run.
 */
const ALWAYS_FOR_OBJECTS = {
  when: (payload: { value: unknown }) => typeof payload.value === 'object' && payload.value !== null,
};

/**
 * Node's timers hold a signed 32-bit count of milliseconds: a longer delay fires after 1 ms (a
 * provider that is never ready, a drain that never waits). Every duration is bounded by it.
 */
export const MAX_TIMER_MS = 2_147_483_647;
export const MAX_TIMER_S = Math.floor(MAX_TIMER_MS / 1000);
/** The cache preallocates its index: 10 million entries take 200 MB before the first request. */
export const MAX_CACHE_ENTRIES = 10_000_000;

const seconds = (what: string) => z.number().nonnegative().max(MAX_TIMER_S).describe(`${what} (seconds)`);
const positiveInt = () => z.number().int().positive();
const positiveMs = () => positiveInt().max(MAX_TIMER_MS);
const nonnegativeMs = () => z.number().int().nonnegative().max(MAX_TIMER_MS);

export const AUTH_METHODS = [
  'client_secret_basic',
  'client_secret_post',
  'private_key_jwt',
  'tls_client_auth',
  'self_signed_tls_client_auth',
  'none',
] as const;
export type AuthMethod = (typeof AUTH_METHODS)[number];

export const BASIC_AUTH_ENCODINGS = ['rfc6749', 'raw'] as const;

/** `host:port` or `[v6]:port`; port 0 asks the system for a free port (tests). */
export const listenSchema = z
  .string()
  .regex(/^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):\d{1,5}$/, 'expected host:port')
  // Judged only when the shape is right, so `nowhere` gets one problem, not two.
  .refine((v) => !/:\d{1,5}$/.test(v) || Number(v.slice(v.lastIndexOf(':') + 1)) <= 65535, 'port out of range');

export const providerSchema = z
  .strictObject({
    name: z.string().regex(PROVIDER_NAME, 'expected [a-z0-9-]{1,40}').describe('Unique; used in metrics and X-Auth-Provider'),
    issuer: z.url().describe('The issuer identifier; its metadata is discovered unless introspection_endpoint is set'),
    introspection_endpoint: z.url().optional().describe('Skip discovery and introspect here (RFC 7662)'),
    client_id: z
      .string()
      .min(1)
      .optional()
      .describe('Introspection credentials; may be left out with jwt (the provider then has no introspection)'),
    client_secret: z.string().min(1).optional(),
    client_secret_file: z.string().min(1).optional().describe('Read client_secret from this file (Kubernetes secret)'),
    auth_method: z.enum(AUTH_METHODS).default('client_secret_basic'),
    basic_auth_encoding: z
      .enum(BASIC_AUTH_ENCODINGS)
      .optional()
      .describe(
        'client_secret_basic: rfc6749 (default) form-urlencodes id and secret before Basic (RFC 6749 §2.3.1); raw sends them as they are, for providers that do not decode (Glewlwyd, LemonLDAP::NG)',
      ),
    private_key_file: z.string().min(1).optional().describe('private_key_jwt: PEM or JWK (with kid)'),
    signing_alg: z.string().min(1).optional().describe('private_key_jwt: JWS algorithm; default from the key'),
    tls_cert_file: z.string().min(1).optional().describe('Client certificate for mutual TLS (RFC 8705)'),
    tls_key_file: z.string().min(1).optional(),
    ca_file: z.string().min(1).optional().describe('Extra CA certificates trusted for this provider only'),
    introspection_response: z.enum(['json', 'jwt']).default('json').describe('jwt: require a signed answer (RFC 9701)'),
    introspection_signing_alg: z.string().min(1).optional(),
    audience: z
      .union([z.string().min(1), z.array(z.string().min(1)).min(1)], { error: 'expected a string or a list of strings' })
      .transform((v) => (typeof v === 'string' ? [v] : v))
      .optional()
      .describe("The token's aud must contain one of these"),
    timeout_ms: positiveMs().default(2000).describe('Introspection deadline (milliseconds)'),
    max_concurrency: positiveInt().max(100_000).default(32).describe('Introspection calls in flight to this provider'),
    queue_timeout_ms: nonnegativeMs().default(1000).describe('Wait for a call slot, then 503 (milliseconds)'),
    circuit_breaker: z
      .strictObject({
        failures: positiveInt().max(1_000_000).default(5).describe('Consecutive failures that open the breaker'),
        max_pause_s: positiveInt().max(MAX_TIMER_S).default(30).describe('Longest pause; starts at 1 s and doubles (seconds)'),
      })
      .default({ failures: 5, max_pause_s: 30 }),
    allow_http: z.boolean().default(false).describe('Accept an http:// issuer or endpoint on a non-loopback host'),
    jwt: jwtSchema.optional().describe("Verify JWT access tokens locally with the provider's published keys (RFC 9068)"),
  })
  .superRefine((p, ctx) => {
    const problem = (path: string, message: string) => ctx.addIssue({ code: 'custom', path: [path], message });
    checkJwtProvider(p, problem, isLoopbackHost);
    for (const key of ['issuer', 'introspection_endpoint'] as const) {
      const value = p[key];
      if (typeof value === 'string' && URL.canParse(value)) {
        const url = new URL(value);
        if (url.protocol === 'http:' && p.allow_http !== true && !isLoopbackHost(url.hostname)) {
          problem(key, 'http:// is accepted only for loopback hosts unless allow_http is true');
        } else if (url.protocol !== 'http:' && url.protocol !== 'https:') {
          problem(key, 'expected an https:// URL');
        }
      }
    }
    // Credentials are for introspection: a jwt provider without a client_id has none to check.
    const introspects = p.client_id !== undefined || p.jwt === undefined;
    const needsSecret = introspects && (p.auth_method === 'client_secret_basic' || p.auth_method === 'client_secret_post');
    if (needsSecret && p.client_secret === undefined) problem('client_secret', `required with auth_method ${p.auth_method}`);
    if (introspects && p.auth_method === 'private_key_jwt' && p.private_key_file === undefined) {
      problem('private_key_file', 'required with auth_method private_key_jwt');
    }
    if (p.auth_method === 'tls_client_auth' || p.auth_method === 'self_signed_tls_client_auth') {
      if (p.tls_cert_file === undefined) problem('tls_cert_file', `required with auth_method ${p.auth_method}`);
      if (p.tls_key_file === undefined) problem('tls_key_file', `required with auth_method ${p.auth_method}`);
    }
    if ((p.tls_cert_file === undefined) !== (p.tls_key_file === undefined)) {
      problem(p.tls_cert_file === undefined ? 'tls_cert_file' : 'tls_key_file', 'tls_cert_file and tls_key_file go together');
    }
    // A key file the method does not use would be silently ignored: the operator meant something else.
    if (p.auth_method !== 'private_key_jwt') {
      if (p.private_key_file !== undefined) problem('private_key_file', 'only with auth_method private_key_jwt');
      if (p.signing_alg !== undefined) problem('signing_alg', 'only with auth_method private_key_jwt');
    }
    if (p.basic_auth_encoding !== undefined && p.auth_method !== 'client_secret_basic') {
      problem('basic_auth_encoding', 'only with auth_method client_secret_basic');
    }
    // RFC 7617 §2: the user-id of Basic ends at the first colon; only the form encoding can carry one.
    if (p.basic_auth_encoding === 'raw' && typeof p.client_id === 'string' && p.client_id.includes(':')) {
      problem('basic_auth_encoding', 'raw cannot send a client_id that contains ":"');
    }
    if (p.introspection_response === 'jwt' && p.introspection_endpoint !== undefined) {
      // The answer's signature is checked against the JWKS named by the provider's metadata.
      problem('introspection_response', 'jwt needs the provider metadata (its jwks_uri): leave introspection_endpoint out');
    }
    if (p.introspection_signing_alg !== undefined && p.introspection_response !== 'jwt') {
      problem('introspection_signing_alg', 'only with introspection_response: jwt');
    }
  }, ALWAYS_FOR_OBJECTS);

const routeSchema = z
  .strictObject({
    match: z
      .strictObject({
        path_prefix: z.string().startsWith('/', 'expected a path starting with /').optional(),
        host: z.string().min(1).optional().describe('Compared case-insensitively, without the port'),
        methods: z.array(z.string().regex(METHOD, 'expected an HTTP method')).min(1).optional(),
      })
      .default({}),
    public: z.boolean().default(false).describe('No token needed; spoofed identity headers are still removed'),
    scopes: z.array(z.string().min(1)).default([]).describe("All of these must be in the token's scope"),
    providers: z.array(z.string().regex(PROVIDER_NAME, 'expected a provider name')).min(1).optional(),
    introspect: z
      .literal('always')
      .optional()
      .describe(
        'always: a JWT that verified is introspected too, so a revoked one is refused (its providers need introspection)',
      ),
  })
  .superRefine((r, ctx) => {
    if (r.public === true && Array.isArray(r.scopes) && r.scopes.length > 0)
      ctx.addIssue({ code: 'custom', path: ['scopes'], message: 'a public route takes no scopes' });
    if (r.public === true && r.providers !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['providers'], message: 'a public route takes no providers' });
    }
  }, ALWAYS_FOR_OBJECTS);

/**
 * RFC 9728 protected resource metadata: tells a client that meets a 401 (an MCP client among
 * them) which authorization servers issue tokens for this API, and for which resource (RFC 8707).
 */
const resourceSchema = z
  .strictObject({
    identifier: z
      .url()
      .describe(
        'The resource identifier (RFC 8707): an absolute https:// URL without a fragment (http:// only for loopback hosts); ' +
          "the metadata is served at /.well-known/oauth-protected-resource followed by its path, and a provider without audience requires it in the token's aud",
      ),
    scopes_supported: z
      .array(z.string().min(1))
      .nullable()
      .default(null)
      .describe("Advertised scopes; null: the union of all routes' scopes"),
    documentation: z.url().nullable().default(null).describe('A URL for people (resource_documentation)'),
  })
  .superRefine((r, ctx) => {
    const value = r.identifier;
    if (typeof value !== 'string' || !URL.canParse(value)) return;
    const problem = (message: string) => ctx.addIssue({ code: 'custom', path: ['identifier'], message });
    const url = new URL(value);
    if (url.protocol === 'http:') {
      if (!isLoopbackHost(url.hostname)) problem('http:// is accepted only for loopback hosts: expected an https:// URL');
    } else if (url.protocol !== 'https:') {
      problem('expected an https:// URL');
    }
    // RFC 8707 §2 and RFC 9728 §1.2: a resource identifier has no fragment (an empty `#` included,
    // which URL parsing would drop silently).
    if (value.includes('#')) problem('a resource identifier must not have a fragment');
    if (url.username !== '' || url.password !== '') problem('a resource identifier must not carry user information');
    // The metadata's path is derived from this one; tollgate refuses these in any request path.
    if (/%(2f|5c|00)/i.test(url.pathname)) problem('an encoded /, \\ or NUL in the path: its metadata could never be served');
  }, ALWAYS_FOR_OBJECTS);

export const DEFAULT_CLAIM_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'X-Auth-Subject': 'sub',
  'X-Auth-Client-Id': 'client_id',
  'X-Auth-Scope': 'scope',
  'X-Auth-Username': 'username',
  'X-Auth-Issuer': 'iss',
  'X-Auth-Expires-At': 'exp',
});

const headerName = () => z.string().regex(HEADER_NAME, 'expected an HTTP header name');

const tokenSource = z.union(
  [
    z.literal('header'),
    z.literal('query'),
    z.string().regex(/^cookie:[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected header, query or cookie:NAME'),
  ],
  { error: 'expected header, query or cookie:NAME' },
);

/** `cache.shared`: answers shared by every replica through Redis or Valkey (cache/shared.ts). */
export const sharedCacheSchema = z
  .strictObject({
    url: z
      .url()
      .refine((v) => /^rediss?:$/.test(new URL(v).protocol), 'expected a redis:// or rediss:// (TLS) URL')
      .describe('redis://host:port/db or rediss:// (TLS); may hold a password'),
    password_file: z.string().min(1).nullable().default(null).describe('Read the password from this file (Kubernetes secret)'),
    ca_file: z.string().min(1).nullable().default(null).describe('rediss:// with a private CA: trusted besides the system CAs'),
    key_prefix: z.string().default('tollgate:').describe('Prefix of every key tollgate writes'),
    timeout_ms: positiveInt().default(50).describe('Per operation; past it the shared cache counts as a miss (milliseconds)'),
  })
  .superRefine((s, ctx) => {
    if (typeof s.url !== 'string' || !URL.canParse(s.url)) return;
    const url = new URL(s.url);
    if (typeof s.password_file === 'string' && url.password !== '')
      ctx.addIssue({ code: 'custom', path: ['password_file'], message: 'give a password in url or password_file, not both' });
    // A CA that could never be used is a mistake, not a no-op.
    if (typeof s.ca_file === 'string' && url.protocol !== 'rediss:')
      ctx.addIssue({ code: 'custom', path: ['ca_file'], message: 'ca_file needs a rediss:// url' });
  }, ALWAYS_FOR_OBJECTS);

/** The signed identity token (README "A signed identity for the API"). */
export const identityJwtSchema = z.strictObject({
  header: headerName().default('X-Auth-Token').describe('Header the token travels in; Authorization sends "Bearer <jwt>"'),
  issuer: z.string().min(1).describe('iss of the minted tokens'),
  audience: z.string().min(1).describe('aud of the minted tokens'),
  ttl_s: z.number().int().positive().default(60).describe("Life of a minted token; never past the access token's exp (seconds)"),
  key_file: z
    .string()
    .min(1)
    .optional()
    .describe('EC P-256, Ed25519 or RSA (2048 bits or more) private key, PEM or JWK; absent: generated at start'),
  alg: z.enum(IDENTITY_ALGS).nullable().default(null).describe('JWS algorithm; default from the key (ES256, EdDSA, RS256)'),
});

/**
 * The identity token's header must be its own: not a header tollgate sets for something else (it
 * would be sent twice), and not an Authorization that the client's token is also forwarded in.
 */
function checkIdentityHeader(
  h: {
    identity_jwt?: { header?: unknown } | null;
    claims?: Record<string, unknown> | undefined;
    provider?: unknown;
    claims_json?: unknown;
    forward_authorization?: unknown;
  },
  ctx: z.RefinementCtx,
): void {
  const header = h.identity_jwt?.header;
  if (typeof header !== 'string') return;
  const name = header.toLowerCase().replace(/[_.]/g, '-');
  const at = ['identity_jwt', 'header'];
  const problem = (message: string) => ctx.addIssue({ code: 'custom', path: at, message });
  if (name === 'authorization' && h.forward_authorization === true) {
    problem("Authorization carries the minted token, so the client's cannot be forwarded: set forward_authorization: false");
  }
  // Authorization is the one header of tollgate's own the token may replace (sent as Bearer).
  if (name !== 'authorization' && OWN_HEADERS.has(name)) problem(`${header} is not a header the token can travel in`);
  const others = [
    ...Object.keys(h.claims ?? DEFAULT_CLAIM_HEADERS).map((c) => [c, `claims.${c}`]),
    [h.provider, 'provider'],
    [h.claims_json, 'claims_json'],
  ];
  for (const [other, where] of others) {
    if (typeof other === 'string' && other.toLowerCase().replace(/[_.]/g, '-') === name) {
      problem(`collides with headers.${where as string}`);
    }
  }
}

export const configSchema = z
  .strictObject({
    listen: listenSchema.default('0.0.0.0:7080'),
    admin_listen: listenSchema.default('0.0.0.0:7081'),
    upstream: z.strictObject({
      // Judged only when it parses: z.url()'s own problem does not stop a refinement.
      url: z
        .url()
        .refine((v) => !URL.canParse(v) || /^https?:$/.test(new URL(v).protocol), 'expected an http:// or https:// URL'),
      timeout_ms: positiveMs().default(30000).describe("Until the upstream's response headers (milliseconds)"),
    }),
    server: z
      .strictObject({
        headers_timeout_ms: positiveMs()
          .default(10_000)
          .describe("Longest wait for a request's complete headers, then 408 and close (slowloris) (milliseconds)"),
        request_timeout_ms: nonnegativeMs()
          .default(300_000)
          .describe('Longest wait for a whole request, body included, then 408 and close; 0 = none (milliseconds)'),
        keep_alive_timeout_ms: positiveMs()
          .default(5_000)
          .describe(
            "An idle client connection is closed after this; keep it above a load balancer's idle timeout (milliseconds)",
          ),
      })
      .default({ headers_timeout_ms: 10_000, request_timeout_ms: 300_000, keep_alive_timeout_ms: 5_000 })
      .refine((s) => s.request_timeout_ms === 0 || s.headers_timeout_ms <= s.request_timeout_ms, {
        message: 'headers_timeout_ms must not exceed request_timeout_ms',
        path: ['headers_timeout_ms'],
      }),
    providers: z.array(providerSchema).default([]),
    providers_dir: z.string().min(1).optional().describe('One provider per *.yaml file, reloaded live'),
    provider_header: headerName().nullable().default(null).describe('Names the provider of an opaque token, e.g. X-Tenant'),
    cache: z
      .strictObject({
        ttl_s: seconds('Longest time an active answer is reused').default(60),
        negative_ttl_s: seconds('How long an inactive answer is reused').default(5),
        max_entries: positiveInt().max(MAX_CACHE_ENTRIES).default(100000),
        stale_if_error_s: seconds('How long past its TTL an answer may serve while the provider fails; 0 = fail closed').default(
          0,
        ),
        refresh_ahead_s: seconds('An active answer used this close to its end is refreshed once in the background').default(5),
        shared: sharedCacheSchema.optional().describe('A cache shared by every replica through Redis or Valkey'),
      })
      .default({ ttl_s: 60, negative_ttl_s: 5, max_entries: 100000, stale_if_error_s: 0, refresh_ahead_s: 5 }),
    clock_skew_s: seconds('Tolerance for exp and nbf').default(30),
    token_sources: z.array(tokenSource).min(1).default(['header']),
    routes: z.array(routeSchema).default([]).describe('First match wins; no match: any allowed provider, no scope'),
    headers: z
      .strictObject({
        claims: z.record(headerName(), z.string().min(1)).optional().describe('header: claim; replaces the default map'),
        provider: headerName().nullable().default('X-Auth-Provider'),
        claims_json: headerName().nullable().default(null).describe('base64url JSON of the whole answer'),
        strip_prefixes: z.array(headerName()).default(['X-Auth-']),
        forward_authorization: z.boolean().default(false),
        identity_jwt: identityJwtSchema
          .nullable()
          .optional()
          .describe('A signed JWT of the identity for the API; absent or null: none'),
      })
      .default({ provider: 'X-Auth-Provider', claims_json: null, strip_prefixes: ['X-Auth-'], forward_authorization: false })
      .superRefine(checkIdentityHeader, ALWAYS_FOR_OBJECTS),
    access_log: z.boolean().default(true),
    resource: resourceSchema.optional().describe('Protected resource metadata (RFC 9728); absent: none is served'),
    shutdown: z
      .strictObject({
        drain_delay_s: seconds('Requests still served after SIGTERM while endpoints are removed').default(5),
        timeout_s: seconds('Longest wait for in-flight requests').default(25),
      })
      .default({ drain_delay_s: 5, timeout_s: 25 }),
  })
  .superRefine((c, ctx) => {
    const seen = new Map<string, number>();
    if (!Array.isArray(c.providers)) return;
    c.providers.forEach((p, i) => {
      if (typeof p?.name !== 'string') return;
      const first = seen.get(p.name);
      if (first !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['providers', i, 'name'], message: `duplicate of providers[${first}].name` });
      } else {
        seen.set(p.name, i);
      }
    });
  }, ALWAYS_FOR_OBJECTS);

export type ProviderConfig = z.output<typeof providerSchema>;
export type RouteConfig = z.output<typeof routeSchema>;
export type Config = z.output<typeof configSchema>;
export type SharedCacheConfig = z.output<typeof sharedCacheSchema>;

export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.toLowerCase();
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}
