/**
 * Configuration that could never take effect is an error, not a silent no-op: each of these was
 * once accepted and quietly weakened a check or broke every request.
 * - a route whose `host` has a port (hosts are compared without one) or whose `path_prefix` is not
 *   already in the normalised form requests are matched in: it never matches, and its scopes never
 *   apply;
 * - two identity headers with one name (as a server behind may read it): both are sent, the
 *   claim's value first; or an identity header tollgate sets or forwards itself;
 * - a token source listed twice: every request with a token would be refused as carrying two;
 * - `listen` and `admin_listen` on one address: the second listener cannot start.
 *
 * The checks read the raw tree as well as a validated one (a field of the wrong type is skipped;
 * the schema reports it), so one run lists every problem.
 */
import { TollgateError } from '../errors.js';
import { normalizeTarget, hostOf } from '../proxy/routes.js';
import type { Problem } from './load.js';
import { OWN_HEADERS } from './own-headers.js';
import { DEFAULT_CLAIM_HEADERS } from './schema.js';
import { quote } from './text.js';

type Tree = Record<string, unknown>;
const isTree = (v: unknown): v is Tree => typeof v === 'object' && v !== null && !Array.isArray(v);

export function findIneffective(config: Tree): Problem[] {
  return [
    ...checkRoutes(config.routes),
    ...checkHeaders(config.headers),
    ...checkTokenSources(config.token_sources),
    ...checkListeners(config),
  ];
}

function checkRoutes(routes: unknown): Problem[] {
  if (!Array.isArray(routes)) return [];
  const problems: Problem[] = [];
  routes.forEach((route, i) => {
    const match = isTree(route) && isTree(route.match) ? route.match : undefined;
    if (match === undefined) return;
    const { host, path_prefix: prefix } = match;
    if (typeof host === 'string' && host !== '' && hostOf(host) !== host.toLowerCase()) {
      problems.push({
        path: `routes[${i}].match.host`,
        message: 'never matches: a request is matched on its host without the port (an IPv6 address in brackets)',
      });
    }
    if (typeof prefix === 'string' && prefix.startsWith('/')) {
      // Requests are matched on their normalised path: a prefix only matches in that form.
      let normalised: string | undefined;
      try {
        const target = normalizeTarget(prefix);
        normalised = target.query === '' ? target.path : undefined;
      } catch (err) {
        if (!(err instanceof TollgateError)) throw err;
        problems.push({
          path: `routes[${i}].match.path_prefix`,
          message: `never matches: ${err.description}`,
        });
        return;
      }
      if (normalised === undefined) {
        problems.push({
          path: `routes[${i}].match.path_prefix`,
          message: 'never matches: a path prefix cannot hold a query (?)',
        });
      } else if (normalised !== prefix) {
        problems.push({
          path: `routes[${i}].match.path_prefix`,
          message: `never matches: requests are matched on the normalised path; write ${quote(normalised)}`,
        });
      }
    }
  });
  return problems;
}

/** Lower-cased, `_` and `.` read as `-`: how a server behind may read a header name. */
const headerKey = (name: string) => name.toLowerCase().replace(/[_.]/g, '-');

function checkHeaders(headers: unknown): Problem[] {
  const h = isTree(headers) ? headers : {};
  const problems: Problem[] = [];
  const named: { path: string; name: string }[] = [];
  const claims = h.claims === undefined ? undefined : isTree(h.claims) ? h.claims : {};
  for (const name of Object.keys(claims ?? {})) named.push({ path: `headers.claims.${name}`, name });
  // The defaults apply only when the key is left out (null turns the header off).
  if (claims === undefined) {
    // The default claim map is sent: a provider or claims_json header may still collide with it.
    for (const name of Object.keys(DEFAULT_CLAIM_HEADERS)) named.push({ path: `headers.claims (default ${name})`, name });
  }
  // The defaults apply only when the key is left out (null turns the header off).
  const provider = h.provider === undefined ? 'X-Auth-Provider' : h.provider;
  if (typeof provider === 'string') named.push({ path: 'headers.provider', name: provider });
  if (typeof h.claims_json === 'string') named.push({ path: 'headers.claims_json', name: h.claims_json });
  const seen = new Map<string, string>();
  for (const { path, name } of named) {
    const key = headerKey(name);
    if (OWN_HEADERS.has(key)) {
      problems.push({ path, message: `${quote(name)} is a header tollgate sets or forwards itself` });
      continue;
    }
    const first = seen.get(key);
    if (first === undefined) seen.set(key, path);
    else problems.push({ path, message: `the same header as ${first}: both would be sent` });
  }
  return problems;
}

function checkTokenSources(sources: unknown): Problem[] {
  if (!Array.isArray(sources)) return [];
  const problems: Problem[] = [];
  const seen = new Map<unknown, number>();
  sources.forEach((source, i) => {
    if (typeof source !== 'string') return;
    const first = seen.get(source);
    if (first === undefined) seen.set(source, i);
    // A token found twice counts as two tokens: every request carrying one would get 400.
    else problems.push({ path: `token_sources[${i}]`, message: `listed twice (also token_sources[${first}])` });
  });
  return problems;
}

const WILDCARD_HOSTS = new Set(['0.0.0.0', '[::]', '[0:0:0:0:0:0:0:0]']);

function checkListeners(config: Tree): Problem[] {
  const listen = splitAddress(config.listen ?? '0.0.0.0:7080');
  const admin = splitAddress(config.admin_listen ?? '0.0.0.0:7081');
  if (listen === undefined || admin === undefined || listen.port === 0 || listen.port !== admin.port) return [];
  // The same port on one host, or on a wildcard address that takes every host's port.
  if (listen.host === admin.host || WILDCARD_HOSTS.has(listen.host) || WILDCARD_HOSTS.has(admin.host)) {
    return [{ path: 'admin_listen', message: `the same address as listen (${quote(String(config.listen ?? '0.0.0.0:7080'))})` }];
  }
  return [];
}

function splitAddress(value: unknown): { host: string; port: number } | undefined {
  if (typeof value !== 'string') return undefined;
  const colon = value.lastIndexOf(':');
  if (colon <= 0) return undefined;
  const port = Number(value.slice(colon + 1));
  // A port out of range is the schema's to report.
  if (!Number.isInteger(port) || port > 65535) return undefined;
  return { host: value.slice(0, colon).toLowerCase(), port };
}
