/**
 * A configuration compiled for the request path: routes with their providers resolved and
 * indexed, the header plan, the token sources. Built once per load and frozen; each request reads
 * the current runtime once, so a reload never shows a request half of two configurations.
 */
import type { Config } from './config/schema.js';
import { createRenderer, type Renderer } from './errors.js';
import { compileIdentity, type Identity } from './identity/mint.js';
import { compileHeaderPlan, type HeaderPlan } from './proxy/headers.js';
import { resourceAudience } from './proxy/policy.js';
import type { Provider } from './provider/providers.js';
import { compileResourceMetadata, type ResourceMetadata } from './proxy/resource-metadata.js';
import type { CompiledRoute } from './proxy/routes.js';
import { indexProviders, type AllowedProviders } from './proxy/select.js';
import { compileTokenSources, type TokenSource } from './proxy/token.js';

export type Route = CompiledRoute<AllowedProviders<Provider>>;

export interface Runtime {
  readonly config: Config;
  readonly providers: ReadonlyMap<string, Provider>;
  readonly routes: readonly Route[];
  /** The route of a request no configured route matches: any provider, no scope. */
  readonly fallback: Route;
  readonly headerPlan: HeaderPlan;
  readonly tokenSources: readonly TokenSource[];
  /** Lower-cased `provider_header`, or null. */
  readonly providerHeader: string | null;
  /** The RFC 9728 document of `resource`, or null when none is configured. */
  readonly resourceMetadata: ResourceMetadata | null;
  /** What `aud` must contain for a provider without `audience`, when `resource` is set (RFC 8707). */
  readonly resourceAudience: readonly string[] | undefined;
  /** Renders refusals, with `resource_metadata` in their challenges when `resource` is set. */
  readonly render: Renderer;
  /** The signed identity token's minter and key set (`headers.identity_jwt`). */
  readonly identity: Identity;
}

export interface CompileOptions {
  /** The runtime this one replaces (a reload): its signing key and minted tokens may carry over. */
  readonly previous?: Runtime | undefined;
  /** Now (epoch milliseconds): when a replaced signing key starts its last ttl_s in the key set. */
  readonly nowMs?: number;
}

/** `providers` holds one started provider per entry of `config.providers`. */
export function compileRuntime(config: Config, providers: ReadonlyMap<string, Provider>, options: CompileOptions = {}): Runtime {
  const lookup = (name: string): Provider => {
    const p = providers.get(name);
    if (p === undefined) throw new Error(`provider ${name} is not started`); // load.ts checked the names
    return p;
  };
  const all = config.providers.map((p) => lookup(p.name));
  const everyProvider = indexProviders(all);
  const routes = config.routes.map((r, index): Route =>
    Object.freeze({
      index,
      host: r.match.host?.toLowerCase(),
      pathPrefix: r.match.path_prefix,
      methods: r.match.methods ? new Set(r.match.methods.map((m) => m.toUpperCase())) : undefined,
      public: r.public,
      scopes: Object.freeze([...r.scopes]),
      scopeText: r.scopes.join(' '),
      providers: r.providers ? indexProviders(r.providers.map(lookup)) : everyProvider,
      introspect: r.introspect === 'always' ? 'introspection' : 'any',
    }),
  );
  const fallback: Route = Object.freeze({
    index: null,
    host: undefined,
    pathPrefix: undefined,
    methods: undefined,
    public: false,
    scopes: Object.freeze([]),
    scopeText: '',
    providers: everyProvider,
    introspect: 'any',
  });
  const resourceMetadata = compileResourceMetadata(config);
  return Object.freeze({
    config,
    providers,
    routes: Object.freeze(routes),
    fallback,
    headerPlan: compileHeaderPlan(config.headers),
    tokenSources: compileTokenSources(config.token_sources),
    providerHeader: config.provider_header?.toLowerCase() ?? null,
    resourceMetadata,
    resourceAudience: resourceMetadata === null ? undefined : resourceAudience(resourceMetadata.identifier),
    render: createRenderer(resourceMetadata?.url),
    identity: compileIdentity(config.headers.identity_jwt ?? null, {
      previous: options.previous?.identity,
      issuers: new Map(all.map((p) => [p.name, p.issuer])),
      nowMs: options.nowMs ?? Date.now(),
    }),
  });
}
