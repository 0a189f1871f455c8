/**
 * Starts tollgate in-process, over real HTTP on 127.0.0.1 port 0, with an injected clock and a
 * logger whose lines the test can read. Stopped by the test's teardown.
 */
import type { Test } from 'tap';
import { pino } from 'pino';
import { startApp, type App } from '../../src/app.js';
import { validateConfig, formatProblems } from '../../src/config/load.js';
import type { Clock } from '../../src/clock.js';
import { REDACT_PATHS } from '../../src/observability/log.js';
import { treeSource, type ConfigSource, type ReloadOptions } from '../../src/reload.js';
import { request, type RequestOptions } from './http.js';

export interface TestTollgate {
  readonly app: App;
  readonly url: string;
  readonly adminUrl: string;
  /** Every log line written so far, parsed. */
  readonly logs: Record<string, unknown>[];
  /** The raw text of every log line, for checks that nothing secret was written. */
  rawLogs(): string;
  /** The access lines (msg "request"). */
  accessLines(): Record<string, unknown>[];
  request(path: string, options?: RequestOptions): ReturnType<typeof request>;
  /** The value of one sample of /metrics, 0 when absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
}

export interface StartOptions {
  clock?: Clock;
  /** Wait until every provider is ready (default true). */
  waitReady?: boolean;
  discoveryRetryMs?: { first: number; max: number };
  /** Where `app.reload()` reads from; default: the same raw tree again (providers_dir re-read). */
  source?: ConfigSource;
  /** Reload timing and watching; default: watch with a 20 ms debounce. */
  reload?: ReloadOptions;
}

/** Test defaults: loopback, port 0, no drain delay. The raw tree is validated like a YAML file. */
export function testTree(raw: Record<string, unknown>): Record<string, unknown> {
  return { listen: '127.0.0.1:0', admin_listen: '127.0.0.1:0', shutdown: { drain_delay_s: 0, timeout_s: 5 }, ...raw };
}

export function testConfig(raw: Record<string, unknown>) {
  const result = validateConfig(testTree(raw));
  if (!result.ok) throw new Error(`test configuration is invalid:\n${formatProblems(result.problems)}`);
  return result.config;
}

export async function startTollgate(t: Test, raw: Record<string, unknown>, options: StartOptions = {}): Promise<TestTollgate> {
  const config = testConfig(raw);
  const lines: string[] = [];
  const logger = pino(
    { level: 'debug', redact: { paths: [...REDACT_PATHS], censor: '[redacted]' }, base: { service: 'tollgate' } },
    { write: (line: string) => void lines.push(line) },
  );
  const app = await startApp({
    config,
    logger,
    ...(options.clock ? { clock: options.clock } : {}),
    ...(options.discoveryRetryMs ? { discoveryRetryMs: options.discoveryRetryMs } : {}),
    source: options.source ?? treeSource(testTree(raw)),
    reload: options.reload ?? { watch: { debounceMs: 20 } },
  });
  t.teardown(() => app.close(1000));
  if (options.waitReady ?? true) await withTimeout(app.whenReady(), 10_000, 'providers did not become ready within 10 s');
  const parsed = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    app,
    url: app.proxyUrl,
    adminUrl: app.adminUrl,
    get logs() {
      return parsed();
    },
    rawLogs: () => lines.join(''),
    accessLines: () => parsed().filter((l) => l.msg === 'request'),
    request: (path, opts) => request(app.proxyUrl + path, opts),
    async metric(name, labels = {}) {
      const text = await app.metrics.registry.metrics();
      const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
      for (const line of text.split('\n')) {
        if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
        if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
      }
      return 0;
    },
  };
}

export async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A provider entry pointing at a test provider, with tollgate's test credentials. */
export function providerEntry(name: string, issuer: string, extra: Record<string, unknown> = {}) {
  return { name, issuer, client_id: 'tollgate', client_secret: 'tollgate-secret', ...extra };
}

/**
 * Polls `check` until it holds, at most `timeoutMs` (bounded: fails with `message`, never hangs).
 * For states tollgate reaches on its own (readiness, a reload after a file change).
 */
export async function eventually(check: () => boolean | Promise<boolean>, message: string, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (performance.now() > deadline) throw new Error(`${message} (waited ${timeoutMs} ms)`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
