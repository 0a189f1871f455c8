/**
 * The proxy benchmarks' processes (`run.ts`, `ab.ts`): children on 127.0.0.1 that report over
 * IPC once they listen, tollgate as its built CLI, and what is read of them (CPU time); and the
 * load both scripts share (scenario (b)'s tokens).
 */
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));

/** Every child started here, for `stopAll`. */
export const children: ChildProcess[] = [];

/** A TypeScript file of this folder in a child (through tsx), resolved with its first IPC message. */
export function forkTs<M>(
  file: string,
  options: { env?: Record<string, string>; execArgv?: readonly string[] } = {},
): Promise<{ child: ChildProcess; message: M }> {
  const child = fork(join(here, file), [], {
    execArgv: [...(options.execArgv ?? []), '--import', 'tsx'],
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${file} did not start within 30 s`)), 30_000);
    child.once('message', (message) => {
      clearTimeout(timer);
      resolve({ child, message: message as M });
    });
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface TollgateCli {
  readonly url: string;
  readonly adminUrl: string;
  readonly pid: number;
}

/**
 * `node CLI --config FILE` with this configuration (listen addresses added), resolved once
 * /readyz says ready. Its access lines go to /dev/null: written, read by nobody.
 */
export async function startTollgateCli(options: {
  name: string;
  cli: string;
  config: Record<string, unknown>;
  /** Where the configuration file is written. */
  dir: string;
  nodeArgs?: readonly string[];
  env?: Record<string, string>;
}): Promise<TollgateCli> {
  const [port, adminPort] = await Promise.all([freePort(), freePort()]);
  const file = join(options.dir, `${options.name}.yaml`);
  // JSON is YAML.
  writeFileSync(file, JSON.stringify({ listen: `127.0.0.1:${port}`, admin_listen: `127.0.0.1:${adminPort}`, ...options.config }));
  const env: NodeJS.ProcessEnv = { ...process.env, TOLLGATE_LOG_LEVEL: 'info', ...options.env };
  delete env.NODE_OPTIONS;
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.cli, '--config', file], {
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  const adminUrl = `http://127.0.0.1:${adminPort}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`tollgate ${options.name} exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${adminUrl}/readyz`)).status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`tollgate ${options.name} was not ready within 60 s`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return { url: `http://127.0.0.1:${port}`, adminUrl, pid: child.pid! };
}

/**
 * Stops every child, or those of these process ids (SIGTERM, so tollgate drains and writes its CPU
 * profile; SIGKILL after 10 s).
 */
export async function stopAll(pids?: readonly number[]): Promise<void> {
  const stopping = pids === undefined ? children : children.filter((child) => pids.includes(child.pid!));
  await Promise.all(
    stopping.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
          child.once('exit', () => {
            clearTimeout(timer);
            resolve();
          });
          child.kill('SIGTERM');
        }),
    ),
  );
}

/** user + system CPU time of a process (milliseconds), from /proc (clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

export const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/** Scenario (b)'s distinct tokens, the same in `run.ts` and `ab.ts --tokens`. */
export const rotatingTokens = (n: number): string[] =>
  Array.from({ length: n }, (_, i) => `bench-rotating-${i.toString(36).padStart(4, '0')}-token`);
