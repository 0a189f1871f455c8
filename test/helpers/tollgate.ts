/**
 * Starts tollgate in-process, over real HTTP on 127.0.0.1 port 0, with an injected clock and a
 * logger whose lines the test can read. Stopped by the test's teardown.
 */
import type { Test } from 'tap';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { Server } from 'node:http';
import type { Socket } from 'node:net';
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
 * Polls `check` until it holds, for things that happen in the background (a refresh reaching the
 * provider); fails with `message` after `ms`. Not a way to let time pass: tests move the clock.
 */
export async function waitFor(check: () => boolean | Promise<boolean>, ms: number, message: string): Promise<void> {
  const deadline = performance.now() + ms;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error(message);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Settles once `count` requests have reached the HTTP server listening at `url` (Node's
 * `http.server.request.start` diagnostics channel, published just before the server's request
 * handler runs), or fails after `ms`. A gate for "every one of these concurrent requests is in".
 */
export function requestsArrived(url: string, count: number, ms = 30_000): Promise<void> {
  const port = Number(new URL(url).port);
  let seen = 0;
  let onStart!: (message: unknown) => void;
  let timer: NodeJS.Timeout | undefined;
  const arrived = new Promise<void>((resolve, reject) => {
    onStart = (message) => {
      if ((message as { socket: Socket }).socket.localPort === port && ++seen === count) resolve();
    };
    timer = setTimeout(() => reject(new Error(`${seen} of ${count} requests reached ${url} within ${ms} ms`)), ms);
  });
  subscribe('http.server.request.start', onStart);
  return arrived.finally(() => {
    clearTimeout(timer);
    unsubscribe('http.server.request.start', onStart);
  });
}

/** `waitFor` with the message first and a 10 s default: for states tollgate reaches on its own. */
export function eventually(check: () => boolean | Promise<boolean>, message: string, timeoutMs = 10_000): Promise<void> {
  return waitFor(check, timeoutMs, `${message} (waited ${timeoutMs} ms)`);
}

/**
 * The next request to reach the HTTP server listening at `url`: that server and the server's side
 * of the connection (from Node's `http.server.request.start` channel). Subscribe before sending.
 * For counting a server's own connections rather than the process's sockets, which other servers
 * and clients in the same test process share.
 */
export function nextRequestAt(url: string, ms = 10_000): Promise<{ server: Server; socket: Socket }> {
  const port = Number(new URL(url).port);
  let onStart!: (message: unknown) => void;
  let timer: NodeJS.Timeout | undefined;
  const arrived = new Promise<{ server: Server; socket: Socket }>((resolve, reject) => {
    onStart = (message) => {
      const { server, socket } = message as { server: Server; socket: Socket };
      if (socket.localPort === port) resolve({ server, socket });
    };
    timer = setTimeout(() => reject(new Error(`no request reached ${url} within ${ms} ms`)), ms);
  });
  subscribe('http.server.request.start', onStart);
  return arrived.finally(() => {
    clearTimeout(timer);
    unsubscribe('http.server.request.start', onStart);
  });
}

/** Connections open at `server` now (its own count, whatever else the process holds). */
export function openConnections(server: Server): Promise<number> {
  return new Promise((resolve, reject) => server.getConnections((err, count) => (err ? reject(err) : resolve(count))));
}
