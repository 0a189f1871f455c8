/**
 * The composition root: builds every dependency once, from a validated configuration, and starts
 * both listeners. Tests start it in-process with an injected clock and logger; the CLI starts it
 * with the real ones.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createAdminHandler } from './admin.js';
import { systemClock, type Clock } from './clock.js';
import type { Config } from './config/schema.js';
import { createLogger, type Logger } from './observability/log.js';
import { createMetrics, type Metrics } from './observability/metrics.js';
import { createUpstream } from './proxy/forward.js';
import { createHandler } from './proxy/handler.js';
import { createIntrospectionCache } from './proxy/introspect.js';
import { createProvider, type Provider } from './proxy/providers.js';
import { compileRuntime, type Runtime } from './runtime.js';

export interface AppOptions {
  config: Config;
  logger?: Logger;
  clock?: Clock;
  /** Discovery retry pauses (milliseconds); SPEC §5's 1 s doubling to 30 s by default. */
  discoveryRetryMs?: { first: number; max: number };
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
  /** /readyz answers 503 from now on; requests are still served (SPEC §7). */
  startDraining(): void;
  /**
   * Stops accepting connections, lets in-flight requests finish for up to `timeoutMs`, then cuts
   * what is left and releases every resource.
   */
  close(timeoutMs?: number): Promise<void>;
}

export async function startApp(options: AppOptions): Promise<App> {
  const config = options.config;
  const clock = options.clock ?? systemClock;
  const logger = options.logger ?? createLogger();
  let cacheSize = () => 0;
  const metrics = createMetrics({ cacheSize: () => cacheSize() });
  const cache = createIntrospectionCache(config.cache, clock, metrics);
  cacheSize = cache.size;

  const providerDeps = { logger, metrics, ...(options.discoveryRetryMs ? { retryMs: options.discoveryRetryMs } : {}) };
  const providers = new Map<string, Provider>(config.providers.map((p) => [p.name, createProvider(p, providerDeps)]));
  const runtime = compileRuntime(config, providers);
  const upstream = createUpstream({ url: config.upstream.url, timeoutMs: config.upstream.timeout_ms });
  let draining = false;

  const handle = createHandler({ runtime: () => runtime, cache, upstream, clock, metrics, logger });
  const proxy = createServer();
  proxy.on('request', (req, res) => void handle(req, res));
  // SPEC §3.8: `100 Continue` only once the request is authorised.
  proxy.on('checkContinue', (req, res) => void handle(req, res, true));
  proxy.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => {
    // Node's parser refused the request (smuggling attempts among them): plain 400, then close.
    if (socket.writable && err.code !== 'ECONNRESET')
      socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    else socket.destroy();
  });

  const isReady = () => !draining && [...providers.values()].every((p) => p.isReady());
  const admin = createServer(createAdminHandler({ metrics, isReady }));

  await Promise.all([listen(proxy, config.listen), listen(admin, config.admin_listen)]);
  const proxyUrl = urlOf(proxy);
  const adminUrl = urlOf(admin);
  logger.info({ proxy: proxyUrl, admin: adminUrl, providers: [...providers.keys()] }, 'tollgate listening');
  logger.flush(); // lines are batched (log.ts): show the start at once

  return {
    proxyUrl,
    adminUrl,
    metrics,
    logger,
    runtime: () => runtime,
    isReady,
    whenReady: async () => {
      await Promise.all([...providers.values()].map((p) => p.ready));
    },
    startDraining() {
      draining = true;
    },
    async close(timeoutMs = config.shutdown.timeout_s * 1000) {
      draining = true;
      await closeServer(proxy, timeoutMs);
      await Promise.all([closeServer(admin, 0), upstream.close(), ...[...providers.values()].map((p) => p.close())]);
      // The access log is written in batches: what is still buffered goes out now.
      await new Promise<void>((resolve) => {
        setTimeout(resolve, 1000).unref(); // a destination that never drains must not hold the exit
        logger.flush(() => resolve());
      });
    },
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
