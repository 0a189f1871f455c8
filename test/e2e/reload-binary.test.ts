/**
 * Reload through the built binary (`node dist/cli.js`, as in production): SIGHUP re-reads
 * everything — here a rotated client secret, whose file is not watched — and an edit of the
 * configuration file itself is picked up by the folder watch; a broken edit is rejected with a
 * log line naming the file, and the old configuration keeps serving. Needs `npm run build`
 * (`npm test` builds first).
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { bearer, request } from '../helpers/http.js';
import { eventually } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

const CLI = path.resolve('dist/cli.js');

t.test('SIGHUP and config-file edits reload the running binary', async (t) => {
  t.ok(existsSync(CLI), 'dist/cli.js is built (npm run build)');
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = mkdtempSync(path.join(tmpdir(), 'tollgate-sighup-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(path.join(dir, 'etc'));
  mkdirSync(path.join(dir, 'secrets'));
  const secretFile = path.join(dir, 'secrets', 'a');
  const configFile = path.join(dir, 'etc', 'tollgate.yaml');
  writeFileSync(secretFile, 'not-the-secret\n');
  const config = (routes: string) => `listen: "127.0.0.1:0"
admin_listen: "127.0.0.1:0"
upstream: { url: "${upstream.url}" }
providers:
  - name: a
    issuer: "${op.issuer}"
    client_id: tollgate
    client_secret_file: ../secrets/a
shutdown: { drain_delay_s: 0, timeout_s: 5 }
${routes}`;
  writeFileSync(configFile, config(''));

  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TOLLGATE_')));
  const child = spawn(process.execPath, [CLI, '--config', configFile], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const lines: Record<string, unknown>[] = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop()!;
    for (const p of parts) if (p.trim() !== '') lines.push(JSON.parse(p) as Record<string, unknown>);
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const logged = (msg: string, extra: (l: Record<string, unknown>) => boolean = () => true) =>
    lines.filter((l) => l.msg === msg && extra(l));

  await eventually(() => logged('tollgate listening').length === 1, `the binary did not start; stderr: ${stderr}`);
  const { proxy, admin } = logged('tollgate listening')[0] as { proxy: string; admin: string };
  // The wrong secret is found at start by the credential probe: not ready, and said why.
  await eventually(
    () => logged("provider not ready: it rejects tollgate's credentials").length > 0,
    'the refused credential probe was not logged',
  );
  t.equal((await request(`${admin}/readyz`)).status, 503, 'not ready with a secret the provider refuses');
  const reloadsOk = async () => {
    const text = (await request(`${admin}/metrics`)).text;
    return Number(/^tollgate_config_reloads_total\{result="success"\} (\d+)$/m.exec(text)?.[1] ?? 0);
  };
  const token = await op.mintToken();

  t.equal((await request(`${proxy}/x`, { headers: bearer(token) })).status, 503, 'the provider rejects the wrong secret');

  // Secret rotation: the secret's folder is not watched, so SIGHUP is what applies it.
  writeFileSync(secretFile, 'tollgate-secret\n');
  child.kill('SIGHUP');
  await eventually(
    () => logged('configuration reloaded', (l) => (l.changed as string[]).includes('a')).length === 1,
    'SIGHUP did not reload the changed provider',
  );
  t.equal((await request(`${proxy}/x`, { headers: bearer(token) })).status, 200, 'the new secret is in use');
  await eventually(async () => (await request(`${admin}/readyz`)).status === 200, 'the binary did not become ready');
  t.equal(await reloadsOk(), 1);

  // An edit of the configuration file itself: seen by the folder watch, no signal needed.
  writeFileSync(configFile, config('routes:\n  - match: { path_prefix: "/open" }\n    public: true\n'));
  await eventually(async () => (await request(`${proxy}/open/x`)).status === 200, 'the edited file was not applied');

  // A broken edit: rejected, logged with the file, the previous configuration keeps serving.
  writeFileSync(configFile, config('routes:\n  - match: { path_prefx: "/open" }\n'));
  await eventually(
    () => logged('configuration reload rejected; the previous configuration keeps serving').length > 0,
    'the broken edit was not reported',
  );
  t.match(logged('configuration reload rejected; the previous configuration keeps serving')[0], {
    file: configFile,
    path: 'routes[0].match.path_prefx',
    problem: 'unknown key',
  });
  const failures = /^tollgate_config_reloads_total\{result="failure"\} (\d+)$/m.exec((await request(`${admin}/metrics`)).text);
  t.equal(failures?.[1], '1', 'the failure is counted');
  t.equal((await request(`${proxy}/open/x`)).status, 200, 'the old configuration still serves');
  t.equal((await request(`${proxy}/x`, { headers: bearer(token) })).status, 200);

  child.kill('SIGTERM');
  t.equal(await exited, 0, 'clean exit after SIGTERM');
  t.notMatch(JSON.stringify(lines), 'tollgate-secret', 'the secret is never logged');
  t.notMatch(JSON.stringify(lines), token, 'the token is never logged');
});
