/**
 * The process around the app (SPEC §7): SIGTERM and SIGINT drain and stop, a second one stops at
 * once. Kubernetes removes the pod's endpoint while `drain_delay_s` runs, so requests that still
 * arrive are served; then the listener closes and in-flight requests get `timeout_s` to finish.
 * SIGHUP reloads the configuration (reload.ts logs and counts the result).
 */
import type { App } from './app.js';
import type { Config } from './config/schema.js';

export interface Lifecycle {
  /** Settles with the exit code once the app has stopped. */
  readonly stopped: Promise<number>;
}

export function runUntilSignalled(app: App, config: Config): Lifecycle {
  let stopping = false;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      app.logger.warn({ signal }, 'second signal: stopping now');
      void app.close(0).then(() => resolveStopped(0));
      return;
    }
    stopping = true;
    app.startDraining();
    const drainMs = config.shutdown.drain_delay_s * 1000;
    app.logger.info({ signal, drain_delay_s: config.shutdown.drain_delay_s, timeout_s: config.shutdown.timeout_s }, 'draining');
    const timer = setTimeout(() => {
      void app.close(config.shutdown.timeout_s * 1000).then(() => {
        app.logger.info('stopped');
        resolveStopped(0);
      });
    }, drainMs);
    timer.unref();
  };

  const hup = () => {
    if (stopping) return; // a configuration that is about to stop serving need not change
    app.logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    void app.reload();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', hup);
  // Keep the event loop alive while draining: the drain timer is unref'd so tests can close early.
  const keepAlive = setInterval(() => {}, 1 << 30);
  void stopped.finally(() => {
    clearInterval(keepAlive);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.off('SIGHUP', hup);
  });
  return { stopped };
}
