/**
 * A SIGTERM during start-up is honoured (SPEC §7). node installs no handler of its own, and as a
 * container's PID 1 it ignores a signal it has no handler for: a `docker stop` or a pod deleted
 * while tollgate was still loading waited its whole timeout and ended in SIGKILL (exit 137).
 * Now the handler is in place before tollgate's modules load; before the listeners are open the
 * process exits 0 at once, and a process that has never been ready (discovery still pending) has
 * never been an endpoint, so it stops without the drain delay.
 */
import { createServer, type Socket } from 'node:net';
import t, { type Test } from 'tap';
import { startBinary } from '../helpers/binary.js';
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

// The moment before the listeners open is no longer held open by a test: the configuration
// loader refuses a FIFO (or any file that is not a regular one) instead of blocking on it, so the
// window is module loading alone. early-signals.ts is the first import of cli.ts for that window.

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
