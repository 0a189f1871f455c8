/**
 * SPEC §3.1 and the routes of §2: the request target is normalised once, routes are compiled once
 * per configuration, and matching is a short loop over precomputed fields.
 */
import { TollgateError } from '../errors.js';
import { startsWithLetters } from './ascii.js';

export interface Target {
  /** The normalised path: matched against routes and forwarded exactly so. */
  readonly path: string;
  /** `?…` as received (empty when none). */
  readonly query: string;
}

const malformed = (description: string) => new TollgateError('invalid_request', description, { challenge: false });

/** RFC 3986 §2.3 unreserved characters, which are decoded (they mean the same either way). */
const UNRESERVED = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~') UNRESERVED[c.charCodeAt(0)] = 1;

const hexValue = (code: number): number => {
  if (code >= 48 && code <= 57) return code - 48;
  const lower = code | 0x20;
  if (lower >= 97 && lower <= 102) return lower - 87;
  return -1;
};

/**
 * Splits the request target and normalises its path: percent-encoded unreserved characters are
 * decoded, other escapes kept (upper-cased), dot-segments resolved (RFC 3986 §5.2.4). Refused with
 * 400: an absolute-form or asterisk target, an encoded `/`, `\` or NUL, a raw `\` (which some
 * servers read as `/`), a broken escape, a dot-segment disguised with `;parameters` (`..;/`, which
 * servlet containers resolve), a path that climbs above the root, and a `.`, `/`, `\` or NUL
 * encoded more than once (`%252e`): an upstream that decodes twice (Apache CVE-2021-42013) would
 * otherwise resolve a dot-segment or split a segment that was matched as plain text.
 */
export function normalizeTarget(url: string): Target {
  if (url.charCodeAt(0) !== 47 /* / */) {
    throw new TollgateError('invalid_request', 'the request target must be a path (origin-form)', { challenge: false });
  }
  const q = url.indexOf('?');
  const rawPath = q === -1 ? url : url.slice(0, q);
  const query = q === -1 ? '' : url.slice(q);
  // Fast path: most paths need no work at all.
  if (rawPath.indexOf('%') === -1 && rawPath.indexOf('/.') === -1 && rawPath.indexOf('\\') === -1) {
    return { path: rawPath, query };
  }
  return { path: removeDotSegments(decodeUnreserved(rawPath)), query };
}

function decodeUnreserved(raw: string): string {
  let out = '';
  let start = 0;
  for (let i = 0; i < raw.length; i++) {
    const c = raw.charCodeAt(i);
    if (c === 92 /* \ */) throw malformed('a backslash in the path');
    if (c !== 37 /* % */) continue;
    const hi = hexValue(raw.charCodeAt(i + 1));
    const lo = hexValue(raw.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) throw malformed('a malformed percent-encoding in the path');
    const byte = hi * 16 + lo;
    if (byte === 0x2f || byte === 0x5c || byte === 0) throw malformed('an encoded slash, backslash or NUL in the path');
    if (byte === 0x25 && encodesSpecial(raw, i + 3)) throw malformed('a dot, slash, backslash or NUL encoded twice in the path');
    out += raw.slice(start, i);
    out += byte < 128 && UNRESERVED[byte] === 1 ? String.fromCharCode(byte) : `%${raw.slice(i + 1, i + 3).toUpperCase()}`;
    start = i + 3;
    i += 2;
  }
  return out + raw.slice(start);
}

/**
 * Whether the text after a `%25` spells, once decoded again (and again), an escape of `.`, `/`,
 * `\` or NUL: `%252e`, `%25252F`, …
 */
function encodesSpecial(raw: string, at: number): boolean {
  let i = at;
  while (raw.charCodeAt(i) === 50 /* 2 */ && raw.charCodeAt(i + 1) === 53 /* 5 */) i += 2;
  const hi = hexValue(raw.charCodeAt(i));
  const lo = hexValue(raw.charCodeAt(i + 1));
  if (hi < 0 || lo < 0) return false;
  const byte = hi * 16 + lo;
  return byte === 0x2e || byte === 0x2f || byte === 0x5c || byte === 0;
}

function removeDotSegments(path: string): string {
  const input = path.split('/');
  const output: string[] = [];
  // input[0] is the empty string before the leading slash.
  for (let i = 1; i < input.length; i++) {
    const segment = input[i]!;
    const last = i === input.length - 1;
    if (segment === '.' || segment === '..') {
      if (segment === '..') {
        if (output.length === 0) throw malformed('the path climbs above the root');
        output.pop();
      }
      if (last) output.push(''); // `/a/b/..` → `/a/`
      continue;
    }
    const semicolon = segment.indexOf(';');
    if (semicolon !== -1) {
      const bare = segment.slice(0, semicolon);
      if (bare === '.' || bare === '..') throw malformed('a dot-segment with parameters in the path');
    }
    output.push(segment);
  }
  return `/${output.join('/')}`;
}

export interface CompiledRoute<A> {
  /** 0-based index in `routes`; null for the implicit route that applies when none matches. */
  readonly index: number | null;
  readonly host: string | undefined;
  readonly pathPrefix: string | undefined;
  readonly methods: ReadonlySet<string> | undefined;
  readonly public: boolean;
  readonly scopes: readonly string[];
  /** RFC 6750 `scope` attribute of an insufficient_scope challenge. */
  readonly scopeText: string;
  /** Providers that may vouch for a token here. */
  readonly providers: A;
  /** What the route needs of a token: `introspection` with `introspect: always` (SPEC §9). */
  readonly introspect?: 'any' | 'introspection';
}

/**
 * The request's one `Host` (RFC 9112 §3.2: a request with two gets 400). Node keeps only the first
 * in `req.headers` but would forward both: a route judged on one host while the upstream reads the
 * other is a bypass, so the raw list is read.
 */
export function requestHost(raw: readonly string[]): string | undefined {
  let host: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 4 || !startsWithLetters(name, 'host')) continue;
    if (host !== undefined) throw malformed('the request carries more than one Host header');
    host = raw[i + 1]!;
  }
  return host;
}

/** `Host` without its port, lower-cased. */
export function hostOf(hostHeader: string | undefined): string {
  if (hostHeader === undefined) return '';
  const bracket = hostHeader.lastIndexOf(']');
  const colon = hostHeader.lastIndexOf(':');
  const bare = colon > bracket ? hostHeader.slice(0, colon) : hostHeader;
  return bare.toLowerCase();
}

/**
 * Routes grouped by host, so that a tenant-per-host configuration (1,000 hosts, 1,000 routes)
 * costs a request one map lookup and a short loop, not a scan of every route. Each host's list
 * keeps the configured order (its own routes and the host-less ones), so first-match-wins is
 * unchanged. Built once per frozen routes array (a runtime's) and remembered with it.
 */
interface HostIndex<A> {
  readonly byHost: ReadonlyMap<string, readonly CompiledRoute<A>[]>;
  /** The routes for a host that no route names: the host-less ones. */
  readonly anyHost: readonly CompiledRoute<A>[];
}

const hostIndexes = new WeakMap<readonly CompiledRoute<unknown>[], HostIndex<unknown>>();

function hostIndexOf<A>(routes: readonly CompiledRoute<A>[]): HostIndex<A> | undefined {
  // Only a frozen array is known not to change under its index (the runtime's always is).
  if (!Object.isFrozen(routes)) return undefined;
  let index = hostIndexes.get(routes) as HostIndex<A> | undefined;
  if (index === undefined) {
    const hosts = new Set(routes.flatMap((r) => (r.host === undefined ? [] : [r.host])));
    const byHost = new Map<string, CompiledRoute<A>[]>();
    for (const host of hosts)
      byHost.set(
        host,
        routes.filter((r) => r.host === undefined || r.host === host),
      );
    index = { byHost, anyHost: routes.filter((r) => r.host === undefined) };
    hostIndexes.set(routes, index as HostIndex<unknown>);
  }
  return index;
}

/**
 * Does `path_prefix` cover `path`, segment by segment (as Kubernetes Ingress `pathType: Prefix`)?
 * `/health` covers `/health`, `/health/` and `/health/live`, never `/healthcare` or
 * `/health-admin`: a character prefix made those public beside a public `/health`. A prefix that
 * ends in `/` covers whatever starts with it. `;` also ends the segment: servers that read
 * `;jsessionid=…` as a parameter of the segment (Tomcat, Spring) serve `/admin;x` as `/admin`, so
 * a route on `/admin` must judge it too.
 */
export function pathPrefixCovers(prefix: string, path: string): boolean {
  if (!path.startsWith(prefix)) return false;
  if (path.length === prefix.length || prefix.endsWith('/')) return true;
  const next = path.charCodeAt(prefix.length);
  return next === 0x2f /* / */ || next === 0x3b; /* ; */
}

/**
 * First match wins. `hostHeader` is the request's Host as received; a route's host is compared
 * with it as `hostOf` reads it.
 */
export function matchRoute<A>(
  routes: readonly CompiledRoute<A>[],
  fallback: CompiledRoute<A>,
  method: string,
  hostHeader: string | undefined,
  path: string,
): CompiledRoute<A> {
  const index = hostIndexOf(routes);
  // Where no route names a host, the Host header plays no part: it is not even parsed.
  const host = index !== undefined && index.byHost.size === 0 ? '' : hostOf(hostHeader);
  const candidates = index === undefined ? routes : (index.byHost.get(host) ?? index.anyHost);
  for (const route of candidates) {
    if (route.host !== undefined && route.host !== host) continue;
    if (route.pathPrefix !== undefined && !pathPrefixCovers(route.pathPrefix, path)) continue;
    if (route.methods !== undefined && !route.methods.has(method)) continue;
    return route;
  }
  return fallback;
}
