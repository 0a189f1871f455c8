/**
 * What the load and soak scripts share: tollgate in a child process (so its memory is its own),
 * a fake provider and an upstream in this process, stats from the child, and small formatting.
 * Loopback only; every run is bounded in requests and in time.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { ProcessStats } from './tollgate-process.js';

export interface Child {
  readonly proxyUrl: string;
  readonly adminUrl: string;
  stats(gc?: boolean): Promise<ProcessStats>;
  /** The child's process, for signals. */
  readonly process: ChildProcess;
  close(): Promise<void>;
}

export async function startTollgateProcess(config: Record<string, unknown>): Promise<Child> {
  const child = fork(fileURLToPath(new URL('./tollgate-process.ts', import.meta.url)), [], {
    execArgv: ['--expose-gc', '--import', 'tsx'],
    env: { ...process.env, TOLLGATE_BENCH_CONFIG: JSON.stringify(config) },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const ready = await within(
    new Promise<{ proxyUrl: string; adminUrl: string }>((resolve, reject) => {
      child.once('message', (m: { type: string; proxyUrl: string; adminUrl: string }) => resolve(m));
      child.once('exit', (code) => reject(new Error(`tollgate exited with ${code} before it was ready`)));
    }),
    30_000,
    'tollgate did not start within 30 s',
  );
  return {
    ...ready,
    process: child,
    stats: (gc = false) =>
      within(
        new Promise<ProcessStats>((resolve) => {
          const onMessage = (m: { type: string; stats: ProcessStats }) => {
            if (m.type !== 'stats') return;
            child.off('message', onMessage);
            resolve(m.stats);
          };
          child.on('message', onMessage);
          child.send({ type: 'stats', gc });
        }),
        30_000,
        'tollgate did not answer for its stats within 30 s',
      ),
    close: () =>
      within(
        new Promise<void>((resolve) => {
          if (child.exitCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.send({ type: 'close' });
        }),
        15_000,
        'tollgate did not stop within 15 s',
      ).catch((err: unknown) => {
        child.kill('SIGKILL');
        throw err;
      }),
  };
}

export function within<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(message)), ms))),
  ]).finally(() => clearTimeout(timer));
}

/** `--name value` arguments as numbers, with defaults. */
export function numberArgs<T extends Record<string, number>>(defaults: T): T {
  const out: Record<string, number> = { ...defaults };
  const argv = process.argv.slice(2);
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]!.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
    if (!(name in defaults)) throw new Error(`unknown option ${argv[i]}; known: ${Object.keys(defaults).join(', ')}`);
    const value = Number(argv[i + 1]);
    if (!Number.isFinite(value) || value < 0) throw new Error(`expected a number after ${argv[i]}, got ${argv[i + 1]}`);
    out[name] = value;
  }
  return out as T;
}

export const mib = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
export const sum = (counts: Record<string, number>) => Object.values(counts).reduce((a, b) => a + b, 0);
