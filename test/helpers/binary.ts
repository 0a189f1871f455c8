/**
 * The built binary (`node dist/cli.js`) as a child process, for tests of what only a real process
 * shows: signals, exit codes, the log on stdout. It listens on 127.0.0.1 port 0; its bound ports
 * come from its `tollgate listening` line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { stringify } from 'yaml';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = path.join(ROOT, 'dist/cli.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Binary {
  readonly child: ChildProcess;
  readonly proxyUrl: string;
  readonly adminUrl: string;
  /** Every JSON line on stdout so far, parsed (a line that is not JSON fails the test). */
  lines(): Record<string, unknown>[];
  /** Everything written to stdout and stderr so far, for checks that nothing secret was printed. */
  output(): string;
  /** Waits for a stdout line that `match` accepts; fails after `ms` with `what` in the message. */
  waitForLine(match: (line: Record<string, unknown>) => boolean, what: string, ms?: number): Promise<Record<string, unknown>>;
  /** Settles when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Waits for the exit; fails after `ms` naming what was expected. */
  waitForExit(ms: number, what: string): Promise<Exit>;
}

export interface BinaryOptions {
  env?: Record<string, string>;
  /** Default 15 s. */
  startTimeoutMs?: number;
  /** Where the config is written and the process runs; default the test's folder (one binary per test). */
  dir?: string;
}

/**
 * Writes `config` as YAML into the test's folder and starts the binary on it; with `null`, no file:
 * zero-file mode, configured by `options.env` alone.
 */
export async function startBinary(t: Test, config: Record<string, unknown> | null, options: BinaryOptions = {}): Promise<Binary> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` first (npm test does)`);
  const dir = options.dir ?? t.testdir({});
  const file = path.join(dir, 'tollgate.yaml');
  if (config !== null) writeFileSync(file, stringify({ listen: '127.0.0.1:0', admin_listen: '127.0.0.1:0', ...config }));
  const child = spawn(process.execPath, [CLI, ...(config === null ? [] : ['--config', file])], {
    cwd: dir,
    env: { PATH: process.env.PATH ?? '', TOLLGATE_LOG_LEVEL: 'info', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let partial = '';
  let all = '';
  const parsed: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  const notify = () => {
    for (const w of waiters) w();
  };
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    all += chunk;
    const text = partial + chunk;
    const cut = text.lastIndexOf('\n');
    partial = text.slice(cut + 1);
    for (const line of text.slice(0, cut + 1).split('\n')) {
      if (line === '') continue;
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        parsed.push({ notJson: line });
      }
    }
    notify();
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    all += chunk;
    notify();
  });
  const exited = new Promise<Exit>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let hasExited = false;
  void exited.then(() => {
    hasExited = true;
    notify();
  });
  // A test that fails midway must not leave its child running.
  t.teardown(async () => {
    if (!hasExited) child.kill('SIGKILL');
    await exited;
  });

  const lines = () => {
    const bad = parsed.find((l) => 'notJson' in l);
    if (bad) throw new Error(`stdout line is not JSON: ${String(bad.notJson)}`);
    return [...parsed];
  };

  const waitForLine: Binary['waitForLine'] = (match, what, ms = 10_000) =>
    new Promise((resolve, reject) => {
      let seen = 0;
      const check = () => {
        for (; seen < parsed.length; seen++) if (match(parsed[seen]!)) return finish(() => resolve(parsed[seen]!));
        if (hasExited) finish(() => reject(new Error(`tollgate exited before ${what}; its output:\n${all}`)));
      };
      const timer = setTimeout(() => finish(() => reject(new Error(`no ${what} within ${ms} ms; output:\n${all}`))), ms);
      const finish = (then: () => void) => {
        clearTimeout(timer);
        waiters.delete(check);
        then();
      };
      waiters.add(check);
      check();
    });

  const listening = await waitForLine(
    (l) => l.msg === 'tollgate listening',
    'tollgate listening line',
    options.startTimeoutMs ?? 15_000,
  );
  return {
    child,
    proxyUrl: String(listening.proxy),
    adminUrl: String(listening.admin),
    lines,
    output: () => all,
    waitForLine,
    exited,
    async waitForExit(ms, what) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`tollgate did not exit within ${ms} ms (${what}); output:\n${all}`)), ms);
      });
      try {
        return await Promise.race([exited, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}
