/**
 * The `resource` block (RFC 9728 protected resource metadata): its defaults, and the identifiers
 * check-config refuses — not an absolute https:// URL (http:// only for loopback hosts, as for
 * providers), a fragment, user information, a path whose metadata could never be served — each
 * reported with its path, together with every other problem; the same through the binary.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { loadConfig, validateConfig, type Problem } from '../../src/config/load.js';
import { compileResourceMetadata } from '../../src/proxy/resource-metadata.js';

const run = promisify(execFile);
const base = {
  upstream: { url: 'http://127.0.0.1:9' },
  providers: [{ name: 'idp', issuer: 'https://idp.example', client_id: 'tollgate', client_secret: 's' }],
};
const problemsOf = (resource: unknown): Problem[] => {
  const result = validateConfig({ ...base, resource });
  return result.ok ? [] : result.problems;
};

t.test('accepted identifiers, and the defaults', async (t) => {
  for (const identifier of [
    'https://api.example.com',
    'https://api.example.com/',
    'https://api.example.com:8443/v1/mcp',
    'https://api.example.com/mcp?tenant=a',
    'http://127.0.0.1:7080/mcp',
    'http://localhost/mcp',
    'http://[::1]:7080',
  ]) {
    t.same(problemsOf({ identifier }), [], identifier);
  }
  const result = validateConfig({ ...base, resource: { identifier: 'https://api.example.com' } });
  t.ok(result.ok);
  if (result.ok) {
    t.same(result.config.resource, { identifier: 'https://api.example.com', scopes_supported: null, documentation: null });
  }
  const without = validateConfig(base);
  t.ok(without.ok && without.config.resource === undefined, 'absent: no metadata');
});

t.test('refused identifiers, each with its path', async (t) => {
  const refused: [unknown, RegExp][] = [
    ['http://api.example.com/mcp', /http:\/\/ is accepted only for loopback hosts/],
    ['ftp://api.example.com/', /expected an https:\/\/ URL/],
    ['https://api.example.com/mcp#tools', /fragment/],
    ['https://api.example.com/mcp#', /fragment/],
    ['https://user:pw@api.example.com/', /user information/],
    ['https://api.example.com/a%2Fb', /could never be served/],
    ['/mcp', /./],
    ['api.example.com', /./],
    ['', /./],
    [42, /./],
  ];
  for (const [identifier, message] of refused) {
    const problems = problemsOf({ identifier });
    t.equal(problems.length, 1, `${String(identifier)}: one problem`);
    t.equal(problems[0]?.path, 'resource.identifier', String(identifier));
    t.match(problems[0]?.message, message, String(identifier));
  }
});

t.test('every problem of the block at once, and unknown keys', async (t) => {
  const problems = problemsOf({
    identifier: 'http://api.example.com/#x',
    scopes_supported: ['ok', ''],
    documentation: 'not a url',
    scope: ['typo'],
  });
  // One problem per path (the loader words one message for each), the identifier's first.
  t.same(problems.map((p) => p.path).sort(), [
    'resource.documentation',
    'resource.identifier',
    'resource.scope',
    'resource.scopes_supported[1]',
  ]);
  t.same(
    problemsOf({}).map((p) => p.path),
    ['resource.identifier'],
    'identifier is required',
  );
});

t.test('check-config prints the resource and its metadata location, or refuses it', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-resource-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const good = path.join(dir, 'good.yaml');
  const bad = path.join(dir, 'bad.yaml');
  const yaml = (identifier: string) =>
    `upstream: { url: "http://127.0.0.1:9" }\n` +
    `providers: [{ name: idp, issuer: "https://idp.example", client_id: tollgate, client_secret: s }]\n` +
    `resource: { identifier: "${identifier}" }\n`;
  writeFileSync(good, yaml('https://api.example.com/mcp'));
  writeFileSync(bad, yaml('http://api.example.com/mcp'));
  const ok = await run(process.execPath, ['dist/cli.js', 'check-config', '--config', good], { timeout: 10_000 });
  t.match(
    ok.stdout,
    'resource https://api.example.com/mcp, metadata at https://api.example.com/.well-known/oauth-protected-resource/mcp',
  );
  const failed = await run(process.execPath, ['dist/cli.js', 'check-config', '--config', bad], { timeout: 10_000 }).then(
    () => undefined,
    (err: { code: number; stdout: string; stderr: string }) => err,
  );
  t.equal(failed?.code, 1);
  t.match(`${failed?.stdout}${failed?.stderr}`, /resource\.identifier: http:\/\/ is accepted only for loopback hosts/);
});

t.test("README's MCP configuration is valid, and its metadata is the document the README shows", async (t) => {
  const readme = readFileSync('README.md', 'utf8');
  const section = readme.slice(readme.indexOf('## In front of an MCP server'));
  const yamlBlock = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  const shown = /```\n\$ curl -s (\S+)\n([\s\S]*?)```/.exec(section);
  if (yamlBlock === undefined || shown === null) throw new Error('README has no MCP configuration or curl example');
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-mcp-readme-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'tollgate.yaml'), yamlBlock);
  const result = loadConfig({ configPath: path.join(dir, 'tollgate.yaml'), env: { IDP_SECRET: 's' } });
  if (!result.ok) throw new Error(`README's MCP configuration is invalid: ${JSON.stringify(result.problems)}`);
  const metadata = compileResourceMetadata(result.config)!;
  t.equal(metadata.url, shown[1], 'the curl line reads the metadata location');
  t.same(metadata.document, JSON.parse(shown[2]!), 'the document shown is the one served');
});
