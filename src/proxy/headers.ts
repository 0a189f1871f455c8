/**
 * SPEC §3.7: the headers the upstream receives. The plan is compiled once per configuration; per
 * request there is one pass over the raw header list.
 *
 * Lessons this file answers:
 * - oauth2-proxy (GHSA-vjrc-mh2v-45x6): stripping only exact names let `X-Forwarded_Email` through
 *   to servers that read `_` as `-`. Names are compared lower-cased with `_` and `.` read as `-`.
 * - Traefik (CVE-2024-45410): `Connection: close, X-Forwarded-Host` made the proxy drop a header it
 *   had set itself. Connection-named headers are removed from the client's headers before
 *   tollgate adds its own, so they can never remove an injected one.
 * - Envoy (CVE-2019-9900 family): a claim value with CR/LF or NUL must never split a header;
 *   anything outside printable ASCII is percent-encoded whole.
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.js';
import { DEFAULT_CLAIM_HEADERS } from '../config/schema.js';
import { claim, type Answer } from '../provider/answer.js';

export interface HeaderPlan {
  /** Normalised (lower-case, `_`/`.` as `-`) prefixes whose headers are removed. */
  readonly stripPrefixes: readonly string[];
  /** Normalised names removed whatever their prefix: every header tollgate sets. */
  readonly stripNames: ReadonlySet<string>;
  /** The claim headers (lower-cased) in the configured order, and the claim each one carries (same index). */
  readonly claimHeaders: readonly string[];
  readonly claimNames: readonly string[];
  readonly providerHeader: string | null;
  readonly claimsJsonHeader: string | null;
  readonly forwardAuthorization: boolean;
  /** Lower-cased header of the minted identity token (`identity_jwt.header`), or null. */
  readonly identityHeader: string | null;
}

/** Lower-cased, with `_` and `.` read as `-`: how servers behind us may read a name. */
export function normalizeHeaderName(name: string): string {
  return dashed(name.toLowerCase());
}

/** A lower-cased name with `_` and `.` read as `-` (no allocation for the usual name). */
function dashed(lower: string): string {
  return lower.indexOf('_') === -1 && lower.indexOf('.') === -1 ? lower : lower.replace(/[_.]/g, '-');
}

export function compileHeaderPlan(headers: Config['headers']): HeaderPlan {
  const claims = Object.entries(headers.claims ?? DEFAULT_CLAIM_HEADERS);
  const identityHeader = headers.identity_jwt?.header ?? null;
  const set = [...claims.map(([h]) => h), headers.provider, headers.claims_json, identityHeader].filter(
    (h): h is string => h !== null,
  );
  return Object.freeze({
    stripPrefixes: Object.freeze(headers.strip_prefixes.map(normalizeHeaderName)),
    stripNames: new Set(set.map(normalizeHeaderName)),
    // Sent lower-cased, as Envoy and HTTP/2 write names (RFC 9110 §5.1: they are case-insensitive):
    // undici then finds each name as given instead of lower-casing a copy per request.
    claimHeaders: Object.freeze(claims.map(([h]) => h.toLowerCase())),
    claimNames: Object.freeze(claims.map(([, c]) => c)),
    providerHeader: headers.provider?.toLowerCase() ?? null,
    claimsJsonHeader: headers.claims_json?.toLowerCase() ?? null,
    forwardAuthorization: headers.forward_authorization,
    identityHeader: identityHeader?.toLowerCase() ?? null,
  });
}

/** RFC 9110 §7.6.1 hop-by-hop fields, plus `expect` (answered here, SPEC §3.8) and `proxy-*`. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

export function isSpoofable(plan: HeaderPlan, lowerName: string): boolean {
  const name = dashed(lowerName);
  if (plan.stripNames.has(name)) return true;
  const prefixes = plan.stripPrefixes;
  for (let i = 0; i < prefixes.length; i++) if (name.startsWith(prefixes[i]!)) return true;
  return false;
}

export interface ForwardContext {
  /** The client's address, appended to X-Forwarded-For. */
  readonly clientAddress: string | undefined;
  /**
   * The request's one Host, on which its route was judged: forwarded as Host and X-Forwarded-Host
   * whatever `Connection` names (a client must not make tollgate drop a header it sets itself).
   */
  readonly host: string | undefined;
  /** The verified identity; null on a public route. */
  readonly answer: Answer | null;
  /** A cookie that carried the token, removed from the forwarded Cookie header. */
  readonly tokenCookie: string | undefined;
  /** The minted identity token's header value (identity_jwt), sent in `plan.identityHeader`. */
  readonly identityToken?: string | undefined;
}

/** The upstream request's headers as a flat [name, value, …] list (undici keeps duplicates). */
export function buildUpstreamHeaders(req: IncomingMessage, plan: HeaderPlan, ctx: ForwardContext): string[] {
  const raw = req.rawHeaders;
  const connectionNamed = connectionTokens(req.headers.connection);
  const out: string[] = [];
  let forwardedFor: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    const value = raw[i + 1]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) continue;
    if (connectionNamed !== undefined && connectionNamed.has(lower)) continue;
    switch (lower) {
      case 'x-forwarded-for':
        forwardedFor = forwardedFor === undefined ? value : `${forwardedFor}, ${value}`;
        continue;
      case 'x-forwarded-proto':
      case 'x-forwarded-host':
        continue;
      case 'host':
        continue;
      case 'authorization':
        if (!plan.forwardAuthorization) continue;
        break;
      case 'cookie':
        if (ctx.tokenCookie !== undefined) {
          const rest = withoutCookie(value, ctx.tokenCookie);
          if (rest !== '') out.push(name, rest);
          continue;
        }
        break;
    }
    if (isSpoofable(plan, lower)) continue;
    out.push(name, value);
  }
  if (ctx.host !== undefined) out.push('host', ctx.host);
  if (ctx.clientAddress !== undefined) {
    out.push('x-forwarded-for', forwardedFor === undefined ? ctx.clientAddress : `${forwardedFor}, ${ctx.clientAddress}`);
  } else if (forwardedFor !== undefined) {
    out.push('x-forwarded-for', forwardedFor);
  }
  out.push('x-forwarded-proto', 'http');
  if (ctx.host !== undefined) out.push('x-forwarded-host', ctx.host);
  if (ctx.answer !== null) addIdentity(out, plan, ctx.answer);
  if (plan.identityHeader !== null && ctx.identityToken !== undefined) out.push(plan.identityHeader, ctx.identityToken);
  return out;
}

function addIdentity(out: string[], plan: HeaderPlan, answer: Answer): void {
  // Indexed loops on the hot path: for…of with destructuring steps an iterator per claim.
  const { claimHeaders, claimNames } = plan;
  for (let i = 0; i < claimHeaders.length; i++) {
    const value = renderClaim(claim(answer, claimNames[i]!));
    if (value !== undefined) out.push(claimHeaders[i]!, value);
  }
  if (plan.providerHeader !== null) out.push(plan.providerHeader, answer.provider);
  if (plan.claimsJsonHeader !== null) {
    out.push(plan.claimsJsonHeader, Buffer.from(JSON.stringify(answer.claims)).toString('base64url'));
  }
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/**
 * A claim as a header value (SPEC §3.7): numbers in decimal, arrays joined with a space, objects as
 * JSON; any value with a byte outside 0x20–0x7E is sent whole as encodeURIComponent(UTF-8).
 * Undefined (no header) for a missing or null claim.
 */
export function renderClaim(value: unknown): string | undefined {
  let text: string;
  switch (typeof value) {
    case 'string':
      text = value;
      break;
    case 'number':
      // Integers in decimal, never `1e+21`: String() is exact for safe integers (`exp`, `iat`),
      // BigInt for the larger ones. Digits, signs, `.` and `e` are all printable.
      return Number.isSafeInteger(value) ? String(value) : Number.isInteger(value) ? BigInt(value).toString() : String(value);
    case 'boolean':
      return String(value);
    case 'object':
      if (value === null) return undefined;
      text = Array.isArray(value)
        ? value.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join(' ')
        : JSON.stringify(value);
      break;
    default:
      return undefined;
  }
  if (isPrintableAscii(text)) return text;
  // A lone surrogate cannot be UTF-8 encoded (encodeURIComponent would throw): replace it first.
  return encodeURIComponent(text.replace(LONE_SURROGATE, '\ufffd'));
}

/** Every character in 0x20–0x7E (a loop: cheaper than a regular expression for header-sized text). */
function isPrintableAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 || code > 0x7e) return false;
  }
  return true;
}

const KEEP_ALIVE: ReadonlySet<string> = new Set(['keep-alive']);
const CLOSE: ReadonlySet<string> = new Set(['close']);

function connectionTokens(value: string | undefined): ReadonlySet<string> | undefined {
  if (value === undefined) return undefined;
  // Nearly every request and answer says just one of these: no split, no new Set.
  if (value === 'keep-alive' || value === 'Keep-Alive') return KEEP_ALIVE;
  if (value === 'close' || value === 'Close') return CLOSE;
  const tokens = new Set<string>();
  for (const part of value.split(',')) {
    const token = part.trim().toLowerCase();
    if (token !== '') tokens.add(token);
  }
  return tokens;
}

function withoutCookie(header: string, name: string): string {
  return header
    .split(';')
    .filter((part) => {
      const eq = part.indexOf('=');
      return (eq === -1 ? part : part.slice(0, eq)).trim() !== name;
    })
    .join(';')
    .trim();
}

/** Response headers that must not be relayed to the client (RFC 9110 §7.6.1). */
export function responseHeaders(headers: Record<string, string | string[] | undefined>): Record<string, string | string[]> {
  const named = connectionTokens(typeof headers.connection === 'string' ? headers.connection : undefined);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = value;
  }
  return out;
}
