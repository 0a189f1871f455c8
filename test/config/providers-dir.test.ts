/**
 * providers_dir and the checks that span the configuration (SPEC §2): one provider per file, its
 * name from the file; duplicate names across inline providers and the folder; routes naming
 * unknown providers (folder providers are known); routes shadowed by earlier ones. The same
 * problems through `tollgate check-config`, which lists every one with its path and exits 1.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import t, { type Test } from 'tap';
import { validateConfig, type Problem } from '../../src/config/load.js';

const run = promisify(execFile);

function folder(t: Test, files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-providers-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return dir;
}

const yaml = (issuer: string) => `issuer: "${issuer}"\nclient_id: tollgate\nclient_secret: s\n`;
const inline = (name: string) => ({ name, issuer: `https://${name}.example`, client_id: 'tollgate', client_secret: 's' });
const problemsOf = (raw: Record<string, unknown>): Problem[] => {
  const result = validateConfig({ upstream: { url: 'http://127.0.0.1:9' }, ...raw });
  return result.ok ? [] : result.problems;
};

t.test('folder providers join the inline ones, named after their files', async (t) => {
  const dir = folder(t, {
    'acme.yaml': yaml('https://login.acme.example'),
    'globex.yaml': `name: globex\n${yaml('https://login.globex.example')}`,
    'notes.txt': 'not a provider',
    '.hidden.yaml': 'ignored: true',
  });
  const result = validateConfig({
    upstream: { url: 'http://127.0.0.1:9' },
    providers: [inline('local')],
    providers_dir: dir,
    routes: [{ match: { host: 'acme.api.example' }, providers: ['acme'] }],
  });
  t.ok(result.ok);
  if (result.ok)
    t.same(
      result.config.providers.map((p) => p.name),
      ['local', 'acme', 'globex'],
    );
});

t.test('duplicate names across inline providers and the folder', async (t) => {
  const dir = folder(t, { 'acme.yaml': yaml('https://other.example') });
  t.same(problemsOf({ providers: [inline('acme')], providers_dir: dir }), [
    { path: 'providers_dir/acme.yaml: name', message: 'duplicate provider name acme (also in providers[0])' },
  ]);
});

t.test('a name that differs from the file name', async (t) => {
  const dir = folder(t, { 'acme.yaml': `name: globex\n${yaml('https://x.example')}` });
  t.match(problemsOf({ providers_dir: dir }), [{ path: 'providers_dir/acme.yaml: name', message: /must equal the file name/ }]);
});

t.test('routes naming unknown providers; folder providers are known', async (t) => {
  const dir = folder(t, { 'acme.yaml': yaml('https://login.acme.example') });
  t.same(
    problemsOf({
      providers_dir: dir,
      routes: [{ match: { path_prefix: '/a' }, providers: ['acme', 'initech'] }],
    }),
    [{ path: 'routes[0].providers[1]', message: 'unknown provider initech' }],
  );
});

t.test('a route shadowed by an earlier one is a problem at its path', async (t) => {
  t.same(
    problemsOf({
      providers: [inline('acme')],
      routes: [
        { match: { path_prefix: '/api' } },
        { match: { host: 'a.example' } },
        { match: { path_prefix: '/api/admin' }, scopes: ['admin'] },
      ],
    }),
    [{ path: 'routes[2]', message: 'never matches: routes[0] matches every request it would' }],
  );
});

t.test('check-config lists every problem with its path and exits 1', async (t) => {
  const dir = folder(t, {
    'acme.yaml': yaml('https://login.acme.example'),
    'broken.yaml': 'issuer: not a url\nclient_id: x\nclient_secret: y\n',
  });
  const config = path.join(dir, '..', `${path.basename(dir)}.tollgate.yaml`);
  t.teardown(() => rmSync(config, { force: true }));
  writeFileSync(
    config,
    `upstream: { url: "http://127.0.0.1:9" }
providers:
  - { name: acme, issuer: "https://x.example", client_id: c, client_secret: s }
providers_dir: "${path.basename(dir)}"
routes:
  - match: { path_prefix: "/" }
  - match: { path_prefix: "/admin" }
    providers: [initech]
`,
  );
  const failed = await run(process.execPath, ['dist/cli.js', 'check-config', '--config', config]).then(
    () => undefined,
    (err: { code: number; stderr: string }) => err,
  );
  t.equal(failed?.code, 1);
  const out = failed?.stderr ?? '';
  t.match(out, 'providers_dir/broken.yaml: issuer:');
  t.match(out, 'providers_dir/acme.yaml: name: duplicate provider name acme (also in providers[0])');
  t.match(out, 'routes[1].providers[0]: unknown provider initech');
  t.match(out, 'routes[1]: never matches: routes[0] matches every request it would');

  rmSync(path.join(dir, 'broken.yaml'));
  writeFileSync(
    config,
    `upstream: { url: "http://127.0.0.1:9" }
providers_dir: "${path.basename(dir)}"
routes:
  - match: { path_prefix: "/admin" }
    providers: [acme]
  - match: { path_prefix: "/" }
`,
  );
  const ok = await run(process.execPath, ['dist/cli.js', 'check-config', '--config', config]);
  t.match(ok.stdout, /^configuration OK\n/);
  t.match(ok.stdout, 'acme <https://login.acme.example>');
});
