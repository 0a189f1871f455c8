/**
 * SPEC §7 through the built binary: SIGTERM under a steady load from a second process drops no
 * request tollgate accepted, /readyz turns 503 while requests are still served (each answer then
 * says `Connection: close`), and the process exits 0. A hung upstream cannot hold it past
 * shutdown.timeout_s; a second signal ends it at once; SIGINT behaves as SIGTERM.
 *
 * "Accepted" is what tollgate's access log shows: every request it handled gets one line. So the
 * proof is that each logged request reached the client whole (as many 200s at the client as lines
 * in the log) and that the load client's only errors are connection errors after the listener
 * closed (a connection the kernel queued but tollgate never read is reset, as for any server).
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import t, { type Test } from 'tap';
import { startOidcProvider } from '../../dev/oidc-provider.js';
import { startBinary, ROOT, type Binary } from '../helpers/binary.js';
import { bearer, request } from '../helpers/http.js';
import { providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import type { LoadSummary } from '../helpers/load-client.js';

const LOAD_CLIENT = path.join(ROOT, 'test/helpers/load-client.ts');
const CONNECTION_ERRORS = ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET'];

/** Polls until `check` is true, every 10 ms, at most `ms`; fails naming `what`. */
async function until(check: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const readyz = async (gate: Binary) => {
  try {
    return (await request(`${gate.adminUrl}/readyz`, { timeoutMs: 2000 })).status;
  } catch {
    return 0; // the admin listener has closed
  }
};

const setup = async (t: Test, shutdown: Record<string, number>, upstreamTimeoutMs = 30_000) => {
  const op = await startOidcProvider();
  t.teardown(() => op.close());
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const gate = await startBinary(t, {
    upstream: { url: upstream.url, timeout_ms: upstreamTimeoutMs },
    providers: [providerEntry('acme', op.issuer)],
    shutdown,
  });
  await until(async () => (await readyz(gate)) === 200, 'tollgate to become ready');
  const token = await op.mintToken();
  return { op, upstream, gate, token };
};

t.test('SIGTERM under load: readiness flips, the drain serves, nothing accepted is lost, exit 0', async (t) => {
  const { upstream, gate, token } = await setup(t, { drain_delay_s: 2, timeout_s: 5 });

  // 4 keep-alive workers, at most 20,000 requests and 30 s: bounded whatever happens.
  const load = spawn(process.execPath, ['--import', 'tsx', LOAD_CLIENT, gate.proxyUrl, token, '4', '20000', '30000'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let loadOut = '';
  load.stdout.setEncoding('utf8').on('data', (c: string) => (loadOut += c));
  const loadDone = new Promise<number | null>((resolve) => load.once('exit', resolve));
  t.teardown(() => {
    if (load.exitCode === null) load.kill('SIGKILL');
  });

  await until(() => upstream.requests.length >= 50, 'the load to be flowing (50 requests upstream)', 20_000);
  gate.child.kill('SIGTERM');
  await until(async () => (await readyz(gate)) === 503, '/readyz to answer 503 after SIGTERM', 5000);
  const servedAfterNotReady = upstream.requests.length;
  t.pass('/readyz answers 503 while draining');

  const exit = await gate.waitForExit(20_000, 'after SIGTERM with drain_delay_s 2 and timeout_s 5');
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  t.equal(await loadDone, 0, 'the load client finished');
  const summary = JSON.parse(loadOut) as LoadSummary;

  const lines = gate.lines();
  const drainingAt = lines.findIndex((l) => l.msg === 'draining: not ready, still serving');
  const closingAt = lines.findIndex((l) => l.msg === 'closing the listener: waiting for in-flight requests');
  const access = lines.filter((l) => l.msg === 'request');
  t.ok(drainingAt >= 0 && closingAt > drainingAt, 'draining, then the listener closed');
  t.equal(lines.at(-1)?.msg, 'stopped', 'the last line says stopped');
  t.equal(lines[drainingAt]?.signal, 'SIGTERM');

  const ok = summary.results.filter((r) => r.status === 200);
  const failed = summary.results.filter((r) => r.status !== 200);
  t.same(
    access.filter((l) => l.status !== 200),
    [],
    'every request tollgate accepted was answered 200',
  );
  t.equal(ok.length, access.length, 'every request tollgate accepted reached the client whole');
  t.equal(upstream.requests.length, access.length, 'and the API saw exactly those');
  t.same(
    failed.filter((r) => r.error === null || !CONNECTION_ERRORS.includes(r.error)),
    [],
    `the client's only failures are connection errors (${failed.map((r) => r.error).join(', ') || 'none'})`,
  );
  t.ok(failed.length <= 4, 'each worker stopped at its first connection error');

  const servedWhileDraining = lines.slice(drainingAt, closingAt).filter((l) => l.msg === 'request').length;
  t.ok(servedWhileDraining > 0, `requests were served during the drain delay (${servedWhileDraining})`);
  t.ok(upstream.requests.length > servedAfterNotReady, 'requests were served after /readyz said 503');
  const closing = ok.filter((r) => r.connection === 'close').length;
  t.ok(closing > 0, `answers during the drain carry Connection: close (${closing})`);
  t.ok(
    ok.slice(0, 20).every((r) => r.connection !== 'close'),
    'before the signal, connections were kept alive',
  );
  t.notOk(gate.output().includes(token), "the token is in no line of the binary's output");
  t.notOk(gate.output().includes('tollgate-secret'), 'nor is the client secret');
  t.comment(
    `load: ${ok.length} answered, ${servedWhileDraining} while draining, failures: ${failed.map((r) => r.error).join(', ')}`,
  );
});

t.test('a hung upstream cannot hold the process past shutdown.timeout_s', async (t) => {
  // upstream.timeout_ms (60 s) is far beyond the wait below: only shutdown.timeout_s can end it.
  const { upstream, gate, token } = await setup(t, { drain_delay_s: 0, timeout_s: 1 }, 60_000);
  upstream.handle(() => {
    // Never answers.
  });
  const hung = request(`${gate.proxyUrl}/hang`, { headers: bearer(token), timeoutMs: 30_000 }).then(
    (res) => `status ${res.status}`,
    (err: Error & { code?: string }) => err.code ?? err.message,
  );
  await until(() => upstream.requests.length === 1, 'the request to reach the hung upstream');
  gate.child.kill('SIGTERM');
  const exit = await gate.waitForExit(15_000, 'shutdown.timeout_s 1 with a hung upstream');
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  t.match(await hung, /UND_ERR_SOCKET|ECONNRESET/, 'the hung request was cut');
  const cut = gate.lines().find((l) => l.msg === 'shutdown timeout: in-flight requests cut');
  t.equal(cut?.requests, 1, 'the cut is logged with the number of requests');
});

t.test('a second SIGTERM stops at once', async (t) => {
  const { gate } = await setup(t, { drain_delay_s: 60, timeout_s: 60 });
  gate.child.kill('SIGTERM');
  await gate.waitForLine((l) => l.msg === 'draining: not ready, still serving', 'the draining line');
  gate.child.kill('SIGTERM');
  // 60 s of drain would be left: exiting within 15 s shows the second signal ended it.
  const exit = await gate.waitForExit(15_000, 'a second SIGTERM during a 60 s drain');
  t.same(exit, { code: 0, signal: null });
  t.ok(gate.lines().some((l) => l.msg === 'second signal: stopping now, in-flight requests cut'));
});

t.test('a second SIGTERM while in-flight requests are awaited cuts them at once', async (t) => {
  const { upstream, gate, token } = await setup(t, { drain_delay_s: 0, timeout_s: 60 }, 60_000);
  upstream.handle(() => {
    // Never answers.
  });
  const hung = request(`${gate.proxyUrl}/hang`, { headers: bearer(token), timeoutMs: 30_000 }).then(
    (res) => `status ${res.status}`,
    (err: Error & { code?: string }) => err.code ?? err.message,
  );
  await until(() => upstream.requests.length === 1, 'the request to reach the hung upstream');
  gate.child.kill('SIGTERM');
  await gate.waitForLine((l) => l.msg === 'closing the listener: waiting for in-flight requests', 'the closing line');
  gate.child.kill('SIGTERM');
  const exit = await gate.waitForExit(15_000, 'a second SIGTERM during a 60 s wait for a hung request');
  t.same(exit, { code: 0, signal: null });
  t.match(await hung, /UND_ERR_SOCKET|ECONNRESET/, 'the hung request was cut');
  t.equal(gate.lines().filter((l) => l.msg === 'stopped').length, 1, 'stopped is logged once');
});

t.test('SIGINT drains and stops like SIGTERM', async (t) => {
  const { gate, token } = await setup(t, { drain_delay_s: 0, timeout_s: 5 });
  t.equal((await request(`${gate.proxyUrl}/a`, { headers: bearer(token) })).status, 200);
  gate.child.kill('SIGINT');
  const exit = await gate.waitForExit(15_000, 'after SIGINT');
  t.same(exit, { code: 0, signal: null });
  const draining = gate.lines().find((l) => l.msg === 'draining: not ready, still serving');
  t.equal(draining?.signal, 'SIGINT');
  t.equal(gate.lines().at(-1)?.msg, 'stopped');
});
