/**
 * RFC 9728 protected resource metadata for the API tollgate protects: the document that tells a
 * client which authorization servers issue tokens for it, answered by tollgate itself on the proxy
 * listener (never forwarded), with no token needed. Built once per configuration (runtime.ts); the
 * URLs in it come from the configuration alone, never from the request's `Host` or
 * `X-Forwarded-*` headers, so no client can make tollgate advertise another authorization server.
 */
import type { IncomingMessage } from 'node:http';
import type { Config } from '../config/schema.js';
import type { RenderedError } from '../errors.js';
import { checkFraming } from './framing.js';
import { normalizeTarget } from './routes.js';

/** An answer tollgate writes itself: a status, its headers and the whole body. */
export type Reply = RenderedError;

export interface ResourceMetadata {
  /** The resource identifier, exactly as configured. */
  readonly identifier: string;
  /** The document's absolute URL (RFC 9728 §3.1), for `resource_metadata` in challenges. */
  readonly url: string;
  /** The document's path, normalised as request paths are (routes.ts). */
  readonly path: string;
  /** The identifier's query (`?…`), which RFC 9728 §3.1 keeps in the location; usually empty. */
  readonly query: string;
  /** The members of the document (RFC 9728 §2). */
  readonly document: Readonly<Record<string, unknown>>;
  /** GET and HEAD. */
  readonly found: Reply;
  /** Any other method. */
  readonly notAllowed: Reply;
}

/** RFC 9728 §3.1: the well-known suffix goes between the host and the identifier's path and query. */
export function metadataLocation(identifier: string): URL {
  const id = new URL(identifier);
  const path = id.pathname === '/' ? '' : id.pathname;
  return new URL(`${id.origin}/.well-known/oauth-protected-resource${path}${id.search}`);
}

/**
 * Short enough that a reload (a provider added) reaches clients soon; long enough that an agent
 * that meets many 401s fetches the document once.
 */
const CACHE_CONTROL = 'public, max-age=60';

/** The metadata of `config.resource`, or null when none is configured. */
export function compileResourceMetadata(config: Config): ResourceMetadata | null {
  const resource = config.resource;
  if (resource === undefined) return null;
  const location = metadataLocation(resource.identifier);
  const scopes = resource.scopes_supported ?? unique(config.routes.flatMap((r) => r.scopes));
  const bearerMethods = unique(config.token_sources.flatMap((s) => (s === 'header' || s === 'query' ? [s] : [])));
  // RFC 9728 §2: a member with no value is left out, never null. An empty bearer_methods_supported
  // says something (tokens come only in a cookie, which RFC 6750 has no name for), so it stays.
  const document: Record<string, unknown> = {
    resource: resource.identifier,
    authorization_servers: unique(config.providers.map((p) => p.issuer)),
  };
  if (scopes.length > 0) document.scopes_supported = scopes;
  document.bearer_methods_supported = bearerMethods;
  if (resource.documentation !== null) document.resource_documentation = resource.documentation;

  const body = JSON.stringify(document);
  const found = freeze(200, body, { 'content-type': 'application/json', 'cache-control': CACHE_CONTROL });
  const refusal = JSON.stringify({
    error: 'invalid_request',
    error_description: 'the resource metadata is read with GET or HEAD',
  });
  const notAllowed = freeze(405, refusal, {
    'content-type': 'application/json',
    'cache-control': 'no-store',
    allow: 'GET, HEAD',
  });
  return Object.freeze({
    identifier: resource.identifier,
    url: location.href,
    path: normalizeTarget(location.pathname).path,
    query: location.search,
    document: Object.freeze(document),
    found,
    notAllowed,
  });
}

/**
 * The answer when the request is for the metadata document, else undefined (the pipeline takes
 * it). Matched on the normalised path, as routes are, so `/%2Ewell-known/…` is the document too
 * and never reaches the upstream. What the pipeline refuses — a target it cannot normalise, a
 * body of unknowable length — is left to it, so those refusals stay the same here.
 */
export function answerMetadata(
  metadata: ResourceMetadata,
  req: IncomingMessage,
): { readonly reply: Reply; readonly path: string } | undefined {
  let target;
  try {
    target = normalizeTarget(req.url ?? '');
  } catch {
    return undefined;
  }
  if (target.path !== metadata.path) return undefined;
  // An identifier with a query names a document with that query; without one, any query is ignored.
  if (metadata.query !== '' && target.query !== metadata.query) return undefined;
  try {
    checkFraming(req);
  } catch {
    return undefined;
  }
  const reply = req.method === 'GET' || req.method === 'HEAD' ? metadata.found : metadata.notAllowed;
  return { reply, path: target.path };
}

function freeze(status: number, body: string, headers: Record<string, string>): Reply {
  headers['content-length'] = String(Buffer.byteLength(body));
  return Object.freeze({ status, headers: Object.freeze(headers), body });
}

function unique(values: readonly string[]): string[] {
  return [...new Set(values)];
}
