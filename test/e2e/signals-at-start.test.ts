/**
 * A SIGTERM during start-up is honoured (SPEC §7). node installs no handler of its own, and as a
 * container's PID 1 it ignores a signal it has no handler for: a `docker stop` or a pod deleted
 * while tollgate was still loading waited its whole timeout and ended in SIGKILL (exit 137).
 * Now the handler is in place before tollgate's modules load; before the listeners are open the
 * process exits 0 at once, and a process that has never been ready (discovery still pending) has
 * never been an endpoint, so it stops without the drain delay.
 */
import { spawn, spawnSync } from 'node:child_process';
import { open } from 'node:fs/promises';
import { createServer, type Socket } from 'node:net';
import path from 'node:path';
import t, { type Test } from 'tap';
import { stringify } from 'yaml';
import { CLI, startBinary } from '../helpers/binary.js';
import { withTimeout } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';

/** A provider whose discovery never ends: it accepts connections and never answers. */
async function silentIssuer(t: Test): Promise<string> {
  const sockets = new Set<Socket>();
  const server = createServer((s) => void sockets.add(s));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const { port } = server.address() as { port: number };
  return `http://127.0.0.1:${port}`;
}

t.test('SIGTERM while start-up is held reading the configuration: exit 0 at once', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const dir = t.testdir({});
  // Reading a FIFO blocks until someone writes: the process is held inside its start-up, past
  // the loading of its modules, for exactly as long as the test wants.
  const fifo = path.join(dir, 'secret');
  const made = spawnSync('mkfifo', [fifo]);
  if (made.status !== 0) throw new Error(`mkfifo failed: ${made.stderr}`);
  const file = path.join(dir, 'tollgate.yaml');
  const issuer = await silentIssuer(t);
  await import('node:fs').then((fs) =>
    fs.writeFileSync(
      file,
      stringify({
        listen: '127.0.0.1:0',
        admin_listen: '127.0.0.1:0',
        upstream: { url: upstream.url },
        providers: [{ name: 'acme', issuer, client_id: 'tollgate', client_secret_file: fifo }],
        shutdown: { drain_delay_s: 60, timeout_s: 60 },
      }),
    ),
  );
  const child = spawn(process.execPath, [CLI, '--config', file], {
    env: { PATH: process.env.PATH ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c));
  child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c));
  const exited = new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
  t.teardown(() => void child.kill('SIGKILL'));

  // Opening the writing end returns once tollgate has opened the reading end.
  const writer = await withTimeout(open(fifo, 'w'), 15_000, 'tollgate to open its client_secret_file');
  child.kill('SIGTERM');
  await writer.write('secret\n');
  await writer.close();
  const [code, signal] = await withTimeout(exited, 10_000, `exit after SIGTERM during start-up; output:\n${output}`);
  t.same({ code, signal }, { code: 0, signal: null }, 'exit 0, not killed by the signal');
  const lines = output
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  // Which handler answers depends on when the event loop next polls: early-signals.ts's (no
  // listener opened yet) or the lifecycle's, with no drain delay since the process was never ready.
  const last = lines.at(-1);
  if (last?.msg === 'stopped before start') t.match(last, { signal: 'SIGTERM' }, 'stopped before any listener opened');
  else {
    t.match(last, { msg: 'stopped' }, 'stopped by the lifecycle, at once');
    t.match(
      lines.find((l) => l.msg === 'draining: not ready, still serving'),
      { signal: 'SIGTERM', drain_delay_s: 0 },
    );
  }
  t.notMatch(output, /secret\n/, 'the secret is not printed');
});

t.test('SIGTERM during discovery: never ready, so no drain delay; exit 0 at once', async (t) => {
  const upstream = await startUpstream();
  t.teardown(() => upstream.close());
  const issuer = await silentIssuer(t);
  const gate = await startBinary(t, {
    upstream: { url: upstream.url },
    providers: [{ name: 'acme', issuer, client_id: 'tollgate', client_secret: 'x' }],
    shutdown: { drain_delay_s: 60, timeout_s: 60 },
  });
  const start = Date.now();
  gate.child.kill('SIGTERM');
  // 60 s of drain delay are configured: an exit well inside it shows the delay was skipped.
  const exit = await gate.waitForExit(15_000, 'SIGTERM during discovery, drain_delay_s 60');
  t.same(exit, { code: 0, signal: null });
  t.ok(Date.now() - start < 15_000);
  t.match(
    gate.lines().find((l) => l.msg === 'draining: not ready, still serving'),
    { signal: 'SIGTERM', drain_delay_s: 0 },
  );
  t.ok(gate.lines().some((l) => l.msg === 'stopped'));
});
