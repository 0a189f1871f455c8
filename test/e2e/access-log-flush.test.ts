/**
 * The access log is written in batches, one per turn of the event loop (SPEC §6,
 * src/observability/log.ts): a line must still reach stdout when the process stops, and a stdout
 * that fails must not stop the proxy. Drives the real binary.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { startFakeProvider } from '../helpers/fake-provider.js';
import { bearer, request } from '../helpers/http.js';
import { startUpstream } from '../helpers/upstream.js';

/** The binary with one provider and one upstream, its stdout piped to this process; resolves once ready. */
async function startBinary(t: Test) {
  const provider = await startFakeProvider();
  t.teardown(() => provider.close());
  provider.answer(() => ({ active: true, sub: 'alice' }));
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());

  const dir = mkdtempSync(join(tmpdir(), 'tollgate-log-'));
  const file = join(dir, 'tollgate.yaml');
  writeFileSync(
    file,
    JSON.stringify({
      listen: '127.0.0.1:0',
      admin_listen: '127.0.0.1:0',
      upstream: { url: upstream.url },
      providers: [{ name: 'acme', issuer: provider.issuer, client_id: 'tollgate', client_secret: 's' }],
      shutdown: { drain_delay_s: 0, timeout_s: 5 },
    }),
  );
  const child = spawn(process.execPath, ['dist/cli.js', '--config', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => void child.kill('SIGKILL'));
  const out = { stdout: '' };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (out.stdout += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));

  // The start line is flushed at once, batching or not.
  const deadline = Date.now() + 20_000;
  let listening: { proxy: string; admin: string } | undefined;
  while (listening === undefined) {
    if (Date.now() > deadline) throw new Error(`tollgate did not log its start within 20 s; stdout: ${out.stdout}`);
    const line = out.stdout.split('\n').find((l) => l.includes('"tollgate listening"'));
    if (line !== undefined) listening = JSON.parse(line) as { proxy: string; admin: string };
    else await new Promise((r) => setTimeout(r, 50));
  }
  while ((await request(`${listening.admin}/readyz`)).status !== 200) {
    if (Date.now() > deadline) throw new Error('tollgate was not ready within 20 s');
    await new Promise((r) => setTimeout(r, 50));
  }
  return { child, out, exited, proxy: listening.proxy };
}

t.test('a buffered access line is written when tollgate stops', async (t) => {
  const { child, out, exited, proxy } = await startBinary(t);
  const res = await request(`${proxy}/orders`, { headers: bearer('token-1') });
  t.equal(res.status, 200);
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'clean exit');

  const access = out.stdout
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === 'request');
  t.equal(access.length, 1, 'the access line was flushed before exit');
  t.match(access[0], { path: '/orders', status: 200, outcome: 'allowed', provider: 'acme', cache: 'miss' });
  t.notOk(out.stdout.includes('token-1'), 'the token is not logged');
});

t.test('a stdout whose reader is gone (EPIPE) loses lines but not the proxy', async (t) => {
  const { child, exited, proxy } = await startBinary(t);
  child.stdout.destroy();
  for (let i = 0; i < 20; i++) {
    const res = await request(`${proxy}/orders`, { headers: bearer('token-1') });
    t.equal(res.status, 200, `request ${i} answered`);
  }
  t.equal(child.exitCode, null, 'still running');
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'clean exit');
});
