/**
 * What the image's final stage does, without Docker: `npm ci --omit=dev` beside package.json,
 * package-lock.json and dist/ in a scratch folder outside the project (so no module can resolve
 * from the project's own node_modules), then the binary runs there. A runtime import of a
 * devDependency fails this test.
 */
import { spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { stringify } from 'yaml';
import { CLI, ROOT } from '../helpers/binary.js';
import { request } from '../helpers/http.js';
import { refusingPort } from '../helpers/ports.js';

t.test('npm ci --omit=dev, then the binary starts from that install alone', async (t) => {
  t.ok(existsSync(CLI), 'dist/ is built (npm test builds first)');
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-prod-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  t.equal(path.relative(ROOT, dir).split(path.sep)[0], '..', 'the scratch folder is outside the project');
  for (const up of [path.dirname(dir), path.parse(dir).root]) {
    t.notOk(existsSync(path.join(up, 'node_modules')), `no node_modules above it (${up})`);
  }
  cpSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
  cpSync(path.join(ROOT, 'package-lock.json'), path.join(dir, 'package-lock.json'));
  cpSync(path.join(ROOT, 'dist'), path.join(dir, 'dist'), { recursive: true });

  // The cache is warm from the project's own npm ci; --prefer-offline keeps it fast.
  const install = spawnSync('npm', ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 300_000,
    env: { ...process.env, NODE_ENV: 'production', NODE_PATH: '' },
  });
  t.equal(install.status, 0, `npm ci --omit=dev: ${install.stderr}`);
  for (const dev of ['typescript', 'tap', 'oidc-provider', 'tsx']) {
    t.notOk(existsSync(path.join(dir, 'node_modules', dev)), `${dev} (a devDependency) is not installed`);
  }

  const dead = `http://127.0.0.1:${await refusingPort(t)}`;
  const config = {
    listen: '127.0.0.1:0',
    admin_listen: '127.0.0.1:0',
    upstream: { url: dead },
    // Nothing answers there: discovery retries, the process still starts (SPEC §5).
    providers: [{ name: 'acme', issuer: dead, client_id: 'tollgate', client_secret: 'x' }],
    shutdown: { drain_delay_s: 0, timeout_s: 1 },
  };
  writeFileSync(path.join(dir, 'tollgate.yaml'), stringify(config));
  const env = { PATH: process.env.PATH ?? '', NODE_ENV: 'production' };

  const check = spawnSync(process.execPath, ['dist/cli.js', 'check-config', '--config', 'tollgate.yaml'], {
    cwd: dir,
    encoding: 'utf8',
    timeout: 30_000,
    env,
  });
  t.equal(check.status, 0, `check-config: ${check.stderr}`);
  t.match(check.stdout, /configuration OK/);

  // check-config loads every static import; running also exercises what starts lazily.
  const child = spawn(process.execPath, ['dist/cli.js', '--config', 'tollgate.yaml'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const listening = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 15 s:\n${out}`)), 15_000);
    const look = () => {
      const line = out
        .split('\n')
        .filter((l) => l.startsWith('{') && l.endsWith('}'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === 'tollgate listening');
      if (line) {
        clearTimeout(timer);
        child.stdout.off('data', look);
        resolve(line);
      }
    };
    child.stdout.on('data', look);
    void exited.then(() => reject(new Error(`exited before listening:\n${out}`)));
  });
  t.equal((await request(`${String(listening.admin)}/healthz`)).status, 200, '/healthz answers');
  t.equal((await request(`${String(listening.admin)}/readyz`)).status, 503, '/readyz: the provider is not known yet');
  t.match((await request(`${String(listening.admin)}/metrics`)).text, /tollgate_requests_total/);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit 0 after SIGTERM');
});
