/**
 * SPEC §3.2: exactly one bearer token, from the configured sources, in RFC 6750 `b64token` syntax
 * and at most 4096 bytes. A token that fails here never reaches a provider.
 */
import type { IncomingMessage } from 'node:http';
import { TollgateError } from '../errors.js';
import { startsWithLetters } from './ascii.js';

export const MAX_TOKEN_BYTES = 4096;

/** RFC 6750 §2.1: b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"=" */
const B64TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;

export type TokenSource = { kind: 'header' } | { kind: 'query' } | { kind: 'cookie'; name: string };

export function compileTokenSources(sources: readonly string[]): readonly TokenSource[] {
  return Object.freeze(
    sources.map((s): TokenSource => {
      if (s === 'header' || s === 'query') return { kind: s };
      return { kind: 'cookie', name: s.slice('cookie:'.length) };
    }),
  );
}

export interface ExtractedToken {
  readonly token: string;
  readonly source: TokenSource;
}

const twoTokens = () => new TollgateError('invalid_request', 'the request carries more than one token');

/**
 * Returns the one token of the request, or undefined when it carries none (another
 * Authorization scheme counts as none, RFC 6750 §3.1).
 */
export function extractToken(req: IncomingMessage, sources: readonly TokenSource[], query: string): ExtractedToken | undefined {
  let found: ExtractedToken | undefined;
  for (let i = 0; i < sources.length; i++) {
    const source = sources[i]!;
    let token: string | undefined;
    if (source.kind === 'header') token = fromAuthorization(req.rawHeaders);
    else if (source.kind === 'query') token = fromQuery(query);
    else token = fromCookie(req.headers.cookie, source.name);
    if (token === undefined) continue;
    if (found !== undefined) throw twoTokens();
    found = { token, source };
  }
  if (found === undefined) return undefined;
  // RFC 6750 §2: a client must not use more than one method, whichever sources are configured:
  // a token by an RFC 6750 method tollgate does not read still makes two.
  if (!reads(sources, 'query') && fromQuery(query) !== undefined) throw twoTokens();
  if (!reads(sources, 'header') && fromAuthorization(req.rawHeaders) !== undefined) throw twoTokens();
  checkSyntax(found.token);
  return found;
}

function reads(sources: readonly TokenSource[], kind: TokenSource['kind']): boolean {
  for (let i = 0; i < sources.length; i++) if (sources[i]!.kind === kind) return true;
  return false;
}

function checkSyntax(token: string): void {
  // Length first, so a huge value never meets the regular expression. The pattern is ASCII-only,
  // so the string's length is its byte length.
  if (token.length > MAX_TOKEN_BYTES) throw new TollgateError('invalid_token', 'the token is too long');
  if (!B64TOKEN.test(token)) throw new TollgateError('invalid_token', 'the token is not valid bearer token syntax');
}

/** Node keeps only the first Authorization in `req.headers`, so the raw list is read. */
function fromAuthorization(raw: readonly string[]): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length !== 13 || !startsWithLetters(name, 'authorization')) continue;
    if (value !== undefined) throw twoTokens();
    value = raw[i + 1]!;
  }
  if (value === undefined) return undefined;
  if (!startsWithLetters(value, 'bearer')) return undefined;
  if (value.length === 6) return '';
  if (value.charCodeAt(6) !== 32) return undefined; // `Bearerx …` is another scheme
  let start = 7;
  while (value.charCodeAt(start) === 32) start++;
  return value.slice(start);
}

/** RFC 6750 §2.3 `access_token` query parameter. */
function fromQuery(query: string): string | undefined {
  // Fast path, but `access%5Ftoken` is the same name once decoded: only a query with neither the
  // name nor any escape is skipped.
  if (query.indexOf('access_token') === -1 && query.indexOf('%') === -1) return undefined;
  const values = new URLSearchParams(query.slice(1)).getAll('access_token');
  if (values.length > 1) throw twoTokens();
  return values[0];
}

function fromCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  let value: string | undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq === -1 || part.slice(0, eq).trim() !== name) continue;
    if (value !== undefined) throw twoTokens();
    value = part.slice(eq + 1).trim();
  }
  return value;
}

/**
 * The query without `access_token`, so the upstream never receives the token that way. Every other
 * parameter is kept byte for byte: re-serialising would turn `%20` into `+`, which an API may read
 * differently.
 */
export function queryWithoutToken(query: string): string {
  const kept = query
    .slice(1)
    .split('&')
    .filter((pair) => {
      const eq = pair.indexOf('=');
      return decodeName(eq === -1 ? pair : pair.slice(0, eq)) !== 'access_token';
    });
  return kept.length === 0 ? '' : `?${kept.join('&')}`;
}

/** A parameter name as URLSearchParams reads it (`+` is a space; a broken escape stays as is). */
function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' '));
  } catch {
    return name;
  }
}

/**
 * The issuer a JWT-shaped token claims, unverified: it only chooses which provider to ask, and
 * that provider's answer decides (SPEC §3.3). Undefined for an opaque token.
 */
export function peekIssuer(token: string): string | undefined {
  const first = token.indexOf('.');
  if (first <= 0) return undefined;
  const second = token.indexOf('.', first + 1);
  if (second === -1 || token.indexOf('.', second + 1) !== -1) return undefined;
  const payload = token.slice(first + 1, second);
  if (!/^[A-Za-z0-9_-]+$/.test(payload) || !/^[A-Za-z0-9_-]+$/.test(token.slice(0, first))) return undefined;
  try {
    const claims: unknown = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    if (typeof claims === 'object' && claims !== null && typeof (claims as { iss?: unknown }).iss === 'string') {
      return (claims as { iss: string }).iss;
    }
  } catch {
    // Not JSON: an opaque token that happens to contain two dots.
  }
  return undefined;
}
