/**
 * Every refusal tollgate can give, in one table (SPEC §4). A code is never renamed or reused:
 * callers switch on `err.code`, the access log and metrics read the table, and the README's error
 * table is checked against it by a test.
 */

export type ErrorCode =
  | 'missing_token'
  | 'invalid_request'
  | 'invalid_token'
  | 'insufficient_scope'
  | 'temporarily_unavailable'
  | 'bad_gateway'
  | 'gateway_timeout';

/** The fixed vocabulary of `tollgate_requests_total{outcome}` (SPEC §5). */
export type Outcome =
  'allowed' | 'public' | 'unauthenticated' | 'forbidden' | 'bad_request' | 'provider_unavailable' | 'upstream_error';

export interface ErrorKind {
  readonly status: number;
  readonly outcome: Outcome;
  /**
   * The RFC 6750 §3 `error` attribute of the `WWW-Authenticate` challenge: `null` for a bare
   * challenge (no token at all, RFC 6750 §3.1), `undefined` for no challenge.
   */
  readonly challenge: string | null | undefined;
}

export const ERRORS: Readonly<Record<ErrorCode, ErrorKind>> = Object.freeze({
  missing_token: { status: 401, outcome: 'unauthenticated', challenge: null },
  invalid_request: { status: 400, outcome: 'bad_request', challenge: 'invalid_request' },
  invalid_token: { status: 401, outcome: 'unauthenticated', challenge: 'invalid_token' },
  insufficient_scope: { status: 403, outcome: 'forbidden', challenge: 'insufficient_scope' },
  temporarily_unavailable: { status: 503, outcome: 'provider_unavailable', challenge: undefined },
  bad_gateway: { status: 502, outcome: 'upstream_error', challenge: undefined },
  gateway_timeout: { status: 504, outcome: 'upstream_error', challenge: undefined },
});

export interface TollgateErrorOptions {
  /** `insufficient_scope`: the scopes the route requires (RFC 6750 §3 `scope` attribute). */
  scope?: string;
  /** 503: seconds for `Retry-After`; default 1. */
  retryAfterS?: number;
  /**
   * `invalid_request`: whether the problem is with the token (two tokens), so the answer carries
   * a Bearer challenge; a malformed path does not. Default true.
   */
  challenge?: boolean;
  cause?: unknown;
}

/** Not under `--frozen-intrinsics` (or another freeze of Error), where assigning it would throw. */
const STACK_LIMIT_WRITABLE = Object.getOwnPropertyDescriptor(Error, 'stackTraceLimit')?.writable === true;

/**
 * The one error class. `description` is a fixed, human-readable sentence chosen by tollgate:
 * never built from a token, a header value or a provider's answer, so it is safe to send and log.
 */
export class TollgateError extends Error {
  readonly code: ErrorCode;
  readonly description: string;
  readonly scope: string | undefined;
  readonly retryAfterS: number;
  readonly challenge: boolean;

  constructor(code: ErrorCode, description: string, options: TollgateErrorOptions = {}) {
    // A refusal is an answer, not a bug: its stack is never read (a failure's `cause` keeps its
    // own), and capturing one was most of what a 401 cost (issue 6).
    const stackTraceLimit = Error.stackTraceLimit;
    if (STACK_LIMIT_WRITABLE) Error.stackTraceLimit = 0;
    super(`${code}: ${description}`, options.cause === undefined ? undefined : { cause: options.cause });
    if (STACK_LIMIT_WRITABLE) Error.stackTraceLimit = stackTraceLimit;
    this.name = 'TollgateError';
    this.code = code;
    this.description = description;
    this.scope = options.scope;
    this.retryAfterS = options.retryAfterS ?? 1;
    this.challenge = options.challenge ?? true;
  }

  get kind(): ErrorKind {
    return ERRORS[this.code];
  }
}

export function isTollgateError(err: unknown): err is TollgateError {
  return err instanceof TollgateError;
}

const REALM = 'Bearer realm="tollgate"';

/** RFC 7230 quoted-string: only `"` and `\` need escaping; descriptions are plain ASCII. */
function quote(value: string): string {
  return `"${value.replace(/["\\]/g, '\\$&')}"`;
}

export interface RenderedError {
  readonly status: number;
  /** Shared between refusals alike: copy before adding to it. */
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

/** Renders refusals: the same refusal always gives the same, shared, frozen answer. */
export type Renderer = (err: TollgateError) => RenderedError;

/** At most this many renderings kept per renderer; the bound only guards against a mistake elsewhere. */
const MAX_RENDERED = 256;

/**
 * A renderer of SPEC §4 answers. With `resourceMetadataUrl`, every Bearer challenge also carries
 * `resource_metadata="…"` (RFC 9728 §5.1), so a client that meets a 401 or 403 learns where to
 * read which authorization servers to ask. Made once per configuration (runtime.ts): refusals are
 * rendered once each and then shared, since descriptions are tollgate's fixed sentences and
 * scopes come from the configuration.
 */
export function createRenderer(resourceMetadataUrl?: string): Renderer {
  const rendered = new Map<string, RenderedError>();
  const extra = resourceMetadataUrl === undefined ? '' : `, resource_metadata=${quote(resourceMetadataUrl)}`;
  return (err) => {
    const retryAfter = err.kind.status === 503 ? Math.max(1, Math.ceil(err.retryAfterS)) : 0;
    const key = `${err.code}\n${err.description}\n${err.scope ?? ''}\n${err.challenge}\n${retryAfter}`;
    let refusal = rendered.get(key);
    if (refusal === undefined) {
      refusal = Object.freeze(render(err, retryAfter, extra));
      if (rendered.size < MAX_RENDERED) rendered.set(key, refusal);
    }
    return refusal;
  };
}

/** The headers and body of a refusal, exactly as SPEC §4 prescribes (no resource metadata). */
export const renderError: Renderer = createRenderer();

function render(err: TollgateError, retryAfter: number, extra: string): RenderedError {
  const kind = err.kind;
  const headers: Record<string, string> = {
    'content-type': 'application/json',
    'cache-control': 'no-store',
  };
  if (kind.challenge === null) {
    headers['www-authenticate'] = REALM + extra;
  } else if (kind.challenge !== undefined && err.challenge) {
    let challenge = `${REALM}, error=${quote(kind.challenge)}, error_description=${quote(err.description)}`;
    if (err.scope !== undefined) challenge += `, scope=${quote(err.scope)}`;
    headers['www-authenticate'] = challenge + extra;
  }
  if (kind.status === 503) headers['retry-after'] = String(retryAfter);
  const body = JSON.stringify({ error: err.code, error_description: err.description });
  headers['content-length'] = String(Buffer.byteLength(body));
  return { status: kind.status, headers: Object.freeze(headers), body };
}
