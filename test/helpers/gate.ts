/**
 * The set-up every adversarial test starts from: a scriptable provider that vouches for the token
 * `good` (and `admin`, which also carries the `orders:admin` scope), a recording upstream, and
 * tollgate with a public route, a scoped route, and the default claim headers.
 */
import type { Test } from 'tap';
import { startFakeProvider, type FakeProvider } from './fake-provider.js';
import { providerEntry, startTollgate, type TestTollgate } from './tollgate.js';
import { startUpstream, type RecordingUpstream, type UpstreamOptions } from './upstream.js';

export interface Gate {
  readonly gate: TestTollgate;
  readonly provider: FakeProvider;
  readonly upstream: RecordingUpstream;
  /** `Host` value of the proxy listener, for raw requests. */
  readonly host: string;
}

export interface GateOptions {
  /** Merged over the default configuration (routes, headers, …). */
  config?: Record<string, unknown>;
  upstream?: UpstreamOptions;
  /** Claims answered for `good`, merged over the defaults. */
  claims?: Record<string, unknown>;
}

export const ROUTES = [
  { match: { path_prefix: '/public' }, public: true },
  { match: { path_prefix: '/admin' }, scopes: ['orders:admin'] },
];

export async function startGate(t: Test, options: GateOptions = {}): Promise<Gate> {
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  provider.answer((token) => {
    if (token === 'good') {
      return { active: true, sub: 'alice', client_id: 'app', scope: 'orders:read', iss: provider.issuer, ...options.claims };
    }
    if (token === 'admin') return { active: true, sub: 'root', scope: 'orders:read orders:admin', iss: provider.issuer };
    return { active: false };
  });
  const upstream = await startUpstream(options.upstream);
  t.teardown(() => upstream.close());
  const gate = await startTollgate(t, {
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer)],
    routes: ROUTES,
    ...options.config,
  });
  return { gate, provider, upstream, host: new URL(gate.url).host };
}

/** The identity headers tollgate sets by default for `good`, as the upstream must see them. */
export function goodIdentity(g: Gate): Record<string, string[]> {
  return {
    'x-auth-subject': ['alice'],
    'x-auth-client-id': ['app'],
    'x-auth-scope': ['orders:read'],
    'x-auth-issuer': [g.provider.issuer],
    'x-auth-provider': ['acme'],
  };
}

/** The recorded headers whose names start with `x-auth-` (as the upstream spells them). */
export function identityOf(headers: Record<string, string[]>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [name, values] of Object.entries(headers)) {
    if (/^x[-_.]auth[-_.]/i.test(name)) out[name] = values;
  }
  return out;
}
