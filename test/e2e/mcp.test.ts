/**
 * An MCP server made an OAuth-protected resource by tollgate alone, driven by the official MCP
 * TypeScript SDK on both sides: an `McpServer` over Streamable HTTP as the upstream, oidc-provider
 * as the authorization server (client_credentials with RFC 8707 resource indicators), and an SDK
 * `Client` with the SDK's own `ClientCredentialsProvider`. The client starts with no token and no
 * knowledge of the authorization server: it learns it from tollgate's 401 and the RFC 9728
 * metadata that 401 points to, gets a token for the resource, and uses the server's tools. A route
 * that needs more scope answers 403 `insufficient_scope` with `scope`, which the SDK reads and
 * acts on (it asks again). The SDK's client_credentials flow (1.32) requests the scope its
 * provider was configured with, not the one a challenge names, so the step-up cannot succeed
 * here; that part belongs to the client and its authorization server.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { ClientCredentialsProvider } from '@modelcontextprotocol/sdk/client/auth-extensions.js';
import { extractWWWAuthenticateParams } from '@modelcontextprotocol/sdk/client/auth.js';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { errors } from 'oidc-provider';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { validateConfig } from '../../src/config/load.js';
import { bearer } from '../helpers/http.js';
import type { ConfigSource } from '../../src/reload.js';
import { providerEntry, startTollgate, testTree, withTimeout, type TestTollgate } from '../helpers/tollgate.js';

const AGENT = { client_id: 'mcp-agent', client_secret: 'mcp-agent-secret' };

/** The identity headers the MCP server's tool saw on the request that called it. */
type Seen = Record<string, string | null | undefined>;

/**
 * The MCP server behind tollgate: stateless Streamable HTTP (a new server per request, as the
 * SDK's stateless example does), with one tool that reports the caller tollgate vouched for.
 */
async function startMcpUpstream(): Promise<{ url: string; calls: Seen[]; close(): Promise<void> }> {
  const calls: Seen[] = [];
  const server: Server = createServer(async (req, res) => {
    const mcp = new McpServer({ name: 'orders-mcp', version: '1.0.0' });
    mcp.registerTool('whoami', { description: 'Who tollgate says is calling' }, async (extra) => {
      const headers = extra.requestInfo?.headers ?? {};
      const pick = (name: string) => {
        const value = headers[name];
        return Array.isArray(value) ? value.join(',') : value;
      };
      const seen: Seen = {
        subject: pick('x-auth-subject'),
        client: pick('x-auth-client-id'),
        scope: pick('x-auth-scope'),
        provider: pick('x-auth-provider'),
        authorization: pick('authorization') ?? null,
      };
      calls.push(seen);
      return { content: [{ type: 'text', text: JSON.stringify(seen) }] };
    });
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    res.on('close', () => {
      void transport.close();
      void mcp.close();
    });
    await mcp.connect(transport);
    await transport.handleRequest(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

interface Issued {
  scope: string | undefined;
  aud: unknown;
  clientId: string | undefined;
}

/** oidc-provider as the authorization server: tokens only for a resource it knows (the gate's). */
async function startAuthorizationServer(resource: () => string | undefined) {
  const issued: Issued[] = [];
  const op = await startOidcProvider({
    scopes: ['tools:read', 'tools:admin'],
    clients: [
      { ...AGENT, grant_types: ['client_credentials'], response_types: [], redirect_uris: [], scope: 'tools:read tools:admin' },
    ],
    extraTokenClaims: (clientId) => ({ sub: `agent:${clientId}` }),
    configuration: {
      features: {
        resourceIndicators: {
          enabled: true,
          defaultResource: () => undefined as unknown as string,
          useGrantedResource: () => true,
          getResourceServerInfo: (_ctx, indicator) => {
            if (indicator !== resource()) throw new errors.InvalidTarget();
            // Opaque: the token is introspected, as tollgate does.
            return { scope: 'tools:read tools:admin', accessTokenFormat: 'opaque' };
          },
        },
      },
    },
  });
  op.provider.on('client_credentials.saved', (token) => {
    const saved = token as unknown as { scope?: string; aud?: unknown; clientId?: string };
    issued.push({ scope: saved.scope, aud: saved.aud, clientId: saved.clientId });
  });
  return { op, issued };
}

/**
 * tollgate in front of the MCP server. Its port is known only once it listens, and the resource
 * identifier names it: started with a placeholder, then reloaded with the real identifier.
 */
async function startGate(t: Test, tree: Record<string, unknown>, path: string): Promise<TestTollgate> {
  let current = { ...tree, resource: { identifier: `http://127.0.0.1${path}` } };
  const source: ConfigSource = { load: () => validateConfig(testTree(current)), file: undefined, baseDir: process.cwd() };
  const gate = await startTollgate(t, current, { source, reload: { watch: false } });
  current = { ...tree, resource: { ...(tree.resource as object), identifier: `${gate.url}${path}` } };
  const reloaded = await gate.app.reload();
  if (!reloaded.ok) throw new Error(`reload failed: ${JSON.stringify(reloaded)}`);
  return gate;
}

/**
 * An SDK client that knows only the MCP server's URL and its own credentials and scope (the SDK's
 * client_credentials flow asks for the scope it is configured with).
 */
function agent(t: Test, url: string) {
  const provider = new ClientCredentialsProvider({
    clientId: AGENT.client_id,
    clientSecret: AGENT.client_secret,
    scope: 'tools:read',
  });
  const client = new Client({ name: 'agent', version: '1.0.0' });
  const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
  t.teardown(() => client.close());
  const connect = () => withTimeout(client.connect(transport), 20_000, 'the MCP client did not connect within 20 s');
  return { provider, client, connect };
}

const whoami = async (client: Client): Promise<Seen> => {
  const result = await withTimeout(client.callTool({ name: 'whoami' }), 20_000, 'the tool call did not finish within 20 s');
  const content = result.content as { type: string; text: string }[];
  return JSON.parse(content[0]!.text) as Seen;
};

/** The SDK warns once that a client without `expectedIssuer` lets the server choose: that is the point here. */
function quietExpectedIssuerWarning(t: Test) {
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    if (typeof args[0] === 'string' && args[0].includes('expectedIssuer')) return;
    warn(...args);
  };
  t.teardown(() => {
    console.warn = warn;
  });
}

t.test('an MCP client discovers the authorization server through tollgate and calls a tool', async (t) => {
  quietExpectedIssuerWarning(t);
  let resource: string | undefined;
  const { op, issued } = await startAuthorizationServer(() => resource);
  t.teardown(() => op.close());
  const upstream = await startMcpUpstream();
  t.teardown(() => upstream.close());
  const gate = await startGate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [providerEntry('idp', op.issuer)],
      routes: [{ match: { path_prefix: '/mcp' }, scopes: ['tools:read'] }],
    },
    '/mcp',
  );
  resource = `${gate.url}/mcp`;

  const { provider, client, connect } = agent(t, `${gate.url}/mcp`);
  await connect();
  t.ok(provider.tokens()?.access_token, 'the client obtained a token on its own');
  const { tools } = await client.listTools();
  t.same(
    tools.map((tool) => tool.name),
    ['whoami'],
  );
  const seen = await whoami(client);
  t.same(
    seen,
    { subject: 'agent:mcp-agent', client: 'mcp-agent', scope: 'tools:read', provider: 'idp', authorization: null },
    'the tool sees who called, never the token',
  );

  t.same(
    issued.map(({ scope, aud, clientId }) => ({ scope, aud, clientId })),
    [{ scope: 'tools:read', aud: resource, clientId: 'mcp-agent' }],
    'one token, for the resource tollgate named, with the scope its metadata advertised',
  );
  const lines = gate.accessLines().map((l) => `${l.method} ${l.path} ${l.status}`);
  t.same(
    lines.slice(0, 3),
    ['POST /mcp 401', 'GET /.well-known/oauth-protected-resource/mcp 200', 'POST /mcp 200'],
    '401, then the metadata, then the retried request with a token',
  );
  t.equal(upstream.calls.length, 1, 'the tool ran once');
});

t.test('a route that needs more scope: 403 with scope, which the SDK reads', async (t) => {
  quietExpectedIssuerWarning(t);
  let resource: string | undefined;
  const { op, issued } = await startAuthorizationServer(() => resource);
  t.teardown(() => op.close());
  const upstream = await startMcpUpstream();
  t.teardown(() => upstream.close());
  const gate = await startGate(
    t,
    {
      upstream: { url: upstream.url },
      providers: [providerEntry('idp', op.issuer)],
      routes: [
        { match: { path_prefix: '/mcp/admin' }, scopes: ['tools:admin'] },
        { match: { path_prefix: '/mcp' }, scopes: ['tools:read'] },
      ],
    },
    '/mcp',
  );
  resource = `${gate.url}/mcp`;

  const { provider, connect } = agent(t, `${gate.url}/mcp/admin`);
  await t.rejects(connect(), { code: 403, message: /after trying upscoping/ }, 'the SDK took the insufficient_scope branch');
  t.same(
    issued.map(({ scope, aud }) => ({ scope, aud })),
    [
      { scope: 'tools:read', aud: resource },
      { scope: 'tools:read', aud: resource },
    ],
    'a token after the 401, and the SDK asked again after the 403',
  );
  t.same(
    gate.accessLines().map((l) => `${l.path} ${l.status} ${l.code}`),
    [
      '/mcp/admin 401 missing_token',
      '/.well-known/oauth-protected-resource/mcp 200 null',
      '/mcp/admin 403 insufficient_scope',
      '/.well-known/oauth-protected-resource/mcp 200 null',
      '/mcp/admin 403 insufficient_scope',
    ],
  );
  t.equal(upstream.calls.length, 0, 'nothing reached the MCP server');

  // What the SDK read from that 403, with the SDK's own parser.
  const res = await fetch(`${gate.url}/mcp/admin`, { method: 'POST', headers: bearer(provider.tokens()!.access_token) });
  t.equal(res.status, 403);
  const read = extractWWWAuthenticateParams(res);
  t.same(
    { error: read.error, scope: read.scope, resourceMetadataUrl: read.resourceMetadataUrl?.href },
    {
      error: 'insufficient_scope',
      scope: 'tools:admin',
      resourceMetadataUrl: `${gate.url}/.well-known/oauth-protected-resource/mcp`,
    },
  );
});
