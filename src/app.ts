/**
 * The composition root: builds every dependency once, from a validated configuration, and starts
 * both listeners. Tests start it in-process with an injected clock and logger; the CLI starts it
 * with the real ones.
 */
import { createServer, type Server, type ServerOptions } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createAdminHandler } from './admin.js';
import { createConnections } from './connections.js';
import { createDrain } from './drain.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { createLogger, type Logger } from './observability/log.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createClientErrorHandler } from './proxy/client-error.js';
import { createUpstream } from './proxy/forward.js';
import { createHandler, createPipeline } from './proxy/handler.js';
import { createAnswerCache } from './cache/answers.js';
import type { SharedCache } from './cache/shared.js';
import { createLiveRuntime, type ConfigSource, type ReloadOptions, type ReloadResult } from './reload.js';
import type { Runtime } from './runtime.js';
import { createUpgrades } from './proxy/upgrade.js';

export interface AppOptions {
  config: Config;
  logger?: Logger;
  clock?: Clock;
  /** Discovery retry pauses (milliseconds); SPEC §5's 1 s doubling to 30 s by default. */
  discoveryRetryMs?: { first: number; max: number };
  /** Where `reload()` reads the configuration again (SPEC §7); without one, reloads fail. */
  source?: ConfigSource;
  /** Reload timing and file watching (reload.ts). */
  reload?: ReloadOptions;
}

export interface App {
  /** `http://host:port` of the proxy listener (with the port actually bound). */
  readonly proxyUrl: string;
  readonly adminUrl: string;
  readonly metrics: Metrics;
  readonly logger: Logger;
  runtime(): Runtime;
  /** Configuration loaded, every provider's metadata known, and not draining (SPEC §5 /readyz). */
  isReady(): boolean;
  /** Settles once every provider is ready. */
  whenReady(): Promise<void>;
  /** Re-reads, validates and discovers, then swaps the runtime; the old one serves on failure. */
  reload(): Promise<ReloadResult>;
  /**
   * /readyz answers 503 from now on; requests are still served, each answer with `Connection:
   * close` so keep-alive clients reconnect through the Service (SPEC §7).
   */
  startDraining(): void;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to `timeoutMs`, then cuts
   * what is left and releases every resource. A second call with a shorter timeout (a second
   * SIGTERM: 0) cuts sooner; both settle together.
   */
  close(timeoutMs?: number): Promise<void>;
}

export async function startApp(options: AppOptions): Promise<App> {
  const config = options.config;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  let cacheSize = () => 0;
  let shared: SharedCache | undefined;
  const metrics = createMetrics({
    cacheSize: () => cacheSize(),
    ...(config.cache.shared ? { sharedCacheUp: () => shared?.up() ?? 0 } : {}),
  });
  // Connects in the background: neither the start nor readiness waits for Redis. Loaded only when
  // configured: the Redis client is a third of a second of start-up on a busy node.
  if (config.cache.shared) {
    const { createSharedCache } = await import('./cache/shared.js');
    shared = createSharedCache(config.cache.shared, { metrics, logger, clock });
  }
  const cache = createAnswerCache(config.cache, clock, metrics, shared);
  cacheSize = cache.size;

  const providerDeps = {
    logger,
    metrics,
    clock,
    clockSkewS: config.clock_skew_s,
    ...(options.discoveryRetryMs ? { retryMs: options.discoveryRetryMs } : {}),
  };
  const live = createLiveRuntime({ ...options.reload, config, source: options.source, cache, logger, metrics, providerDeps });
  const runtime = live.runtime;
  const upstream = createUpstream({ url: config.upstream.url, timeoutMs: config.upstream.timeout_ms });
  let draining = false;
  let closing: Promise<void> | undefined;

  const pipelineDeps = { runtime, cache, clock, metrics, logger };
  const handle = createHandler({ ...pipelineDeps, upstream });
  const upgrades = createUpgrades(createPipeline(pipelineDeps), {
    url: config.upstream.url,
    timeoutMs: config.upstream.timeout_ms,
  });
  const proxy = createServer(serverTimeouts(config.server));
  const connections = createConnections(proxy, {
    request: (req, res) => handle(req, res),
    // SPEC §3.8: `100 Continue` only once the request is authorised.
    checkContinue: (req, res) => handle(req, res, true),
  });
  const drain = createDrain(proxy, { connections });
  // SPEC §3.8: authorised like any request, then tunnelled.
  proxy.on('upgrade', (req, socket, head) => upgrades.handle(req, socket, head));
  // Node's parser refused the request (smuggling attempts among them): plain 400, then close;
  // a client too slow with its headers or body (slowloris) gets 408.
  proxy.on('clientError', createClientErrorHandler(connections));

  const isReady = () => !draining && [...runtime().providers.values()].every((p) => p.isReady());
  const jwks = () => runtime().identity.keys.jwks(clock.now());
  const admin = createServer(createAdminHandler({ metrics, isReady, jwks }));

  await Promise.all([listen(proxy, config.listen), listen(admin, config.admin_listen)]);
  const proxyUrl = urlOf(proxy);
  const adminUrl = urlOf(admin);
  logger.info({ proxy: proxyUrl, admin: adminUrl, providers: [...runtime().providers.keys()] }, 'tollgate listening');
  logger.flush(); // lines are batched (log.ts): show the start at once

  return {
    proxyUrl,
    adminUrl,
    metrics,
    logger,
    runtime,
    isReady,
    whenReady: async () => {
      await Promise.all([...runtime().providers.values()].map((p) => p.ready));
    },
    reload: live.reload,
    startDraining() {
      draining = true;
      drain.startDraining();
    },
    close(timeoutMs = config.shutdown.timeout_s * 1000) {
      // A second call (a second SIGTERM: timeout 0) cuts sooner; every call waits for the same end.
      const proxyClosed = drain.close(timeoutMs);
      closing ??= proxyClosed.then(async ({ cut }) => {
        if (cut > 0) logger.warn({ requests: cut }, 'shutdown timeout: in-flight requests cut');
        upgrades.closeAll();
        await Promise.all([closeServer(admin, 0), upstream.close(), live.close(), shared?.close()]);
        // The access log is written in batches: what is still buffered goes out now.
        await new Promise<void>((resolve) => {
          setTimeout(resolve, 1000).unref(); // a destination that never drains must not hold the exit
          logger.flush(() => resolve());
        });
      });
      return closing;
    },
  };
}

/**
 * The proxy listener's limits on slow clients (`server.*`). Node checks them on a timer
 * (`connectionsCheckingInterval`, 30 s by default), which would let a slowloris client hold its
 * connection up to 30 s past the limit: the check runs at least as often as the shortest limit.
 */
function serverTimeouts(server: Config['server']): ServerOptions {
  const limits = [server.headers_timeout_ms, server.request_timeout_ms].filter((ms) => ms > 0);
  return {
    headersTimeout: server.headers_timeout_ms,
    requestTimeout: server.request_timeout_ms,
    keepAliveTimeout: server.keep_alive_timeout_ms,
    connectionsCheckingInterval: Math.max(50, Math.min(1000, ...limits.map((ms) => Math.floor(ms / 4)))),
  };
}

function listen(server: Server, address: string): Promise<void> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).replace(/^\[(.*)\]$/, '$1');
  const port = Number(address.slice(colon + 1));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

function urlOf(server: Server): string {
  const { address, port, family } = server.address() as AddressInfo;
  return `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
}

/** Stops accepting, closes idle keep-alive connections, waits for in-flight requests, then cuts. */
function closeServer(server: Server, timeoutMs: number): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const timer = setTimeout(() => server.closeAllConnections(), timeoutMs);
    timer.unref();
    server.close(() => {
      clearTimeout(timer);
      resolve();
    });
    server.closeIdleConnections();
  });
}
