/**
 * SIGTERM and SIGINT honoured from the process's first instant (SPEC §7). cli.ts imports this
 * module before any other, so its handlers are in place before the rest of tollgate is even
 * evaluated, and long before the listeners open or providers are discovered: until then a SIGTERM
 * killed the process by its default action, or — as a container's PID 1, which gets no default
 * signal action — was lost, and `docker stop` or a pod deleted while tollgate started waited its
 * whole timeout for SIGKILL (exit 137). Until the listeners are open nothing has been accepted,
 * so there is nothing to drain: exit 0 at once.
 * Once they are open, lifecycle.ts takes over and `releaseEarlySignals()` removes these.
 */
const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

function stopBeforeStart(signal: NodeJS.Signals): void {
  // The logger may not exist yet: one line in pino's shape, written synchronously before the exit.
  const line = { level: 30, time: Date.now(), pid: process.pid, service: 'tollgate', signal, msg: 'stopped before start' };
  try {
    process.stdout.write(`${JSON.stringify(line)}\n`);
  } catch {
    // A closed stdout must not turn a clean stop into a crash.
  }
  process.exit(0);
}

for (const signal of SIGNALS) process.on(signal, stopBeforeStart);

/** Hands the signals to the running app's lifecycle (call after it has installed its handlers). */
export function releaseEarlySignals(): void {
  for (const signal of SIGNALS) process.off(signal, stopBeforeStart);
}
