/** The example providers.d/ of the README loads as documented: two tenants, named after their files. */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { loadProvidersDir, type Problem } from '../../src/config/load.js';

t.test('config/providers.d', async (t) => {
  const problems: Problem[] = [];
  const providers = loadProvidersDir(path.resolve('config/providers.d'), { GLOBEX_CLIENT_SECRET: 'from-env' }, problems);
  // acme's secret file exists only in a cluster: the problems are about that file, and say so.
  t.match(problems[0], { path: 'providers_dir/acme.yaml: client_secret_file', message: /cannot read .*: ENOENT/ });
  t.ok(problems.every((p) => p.path.startsWith('providers_dir/acme.yaml: client_secret')));
  t.same(
    providers.map((p) => [p.name, p.issuer]),
    [['globex', 'https://sso.globex.example/realms/main']],
  );
  t.equal(providers[0]?.client_secret, 'from-env');

  // With acme's secret in place, both tenants load.
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-example-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const secret = path.join(dir, 'acme');
  writeFileSync(secret, 's3cret\n');
  const text = (await import('node:fs'))
    .readFileSync('config/providers.d/acme.yaml', 'utf8')
    .replace('/var/run/secrets/tollgate/acme', secret);
  writeFileSync(path.join(dir, 'acme.yaml'), text);
  const again: Problem[] = [];
  const loaded = loadProvidersDir(dir, {}, again);
  t.same(again, []);
  t.match(loaded, [{ name: 'acme', client_secret: 's3cret', audience: ['orders-api'] }]);
});
