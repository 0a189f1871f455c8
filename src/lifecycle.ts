/**
 * The process around the app (SPEC §7). SIGTERM (and SIGINT, for a terminal) drains and stops:
 *
 *   signal ── /readyz 503 at once, requests still served (each answer `Connection: close`)
 *          ── drain_delay_s later: the listener closes, idle connections end
 *          ── in-flight requests finish, up to timeout_s; what is left is then cut
 *          ── exit 0
 *
 * Kubernetes removes the pod's endpoint while `drain_delay_s` runs, so requests that still arrive
 * are served. A second signal stops at once: whoever sends it has stopped waiting. In the image
 * tini is PID 1 and forwards every signal here (the Dockerfile says why).
 *
 * SIGHUP reloads the configuration (reload.ts logs and counts the result). Signals that come
 * before the listeners are open are early-signals.ts's.
 */
import type { App } from './app.js';
import type { Config } from './config/schema.js';

export interface Lifecycle {
  /** Settles with the exit code once the app has stopped. */
  readonly stopped: Promise<number>;
}

export interface LifecycleOptions {
  /** Where the signals come from; default `process`. */
  signals?: Pick<NodeJS.Process, 'on'>;
}

const SIGNALS = ['SIGTERM', 'SIGINT'] as const;

export function runUntilSignalled(app: App, config: Config, options: LifecycleOptions = {}): Lifecycle {
  const source = options.signals ?? process;
  const { drain_delay_s, timeout_s } = config.shutdown;
  let signalled = false;
  let drainTimer: NodeJS.Timeout | undefined;
  let resolveStopped!: (code: number) => void;
  const stopped = new Promise<number>((resolve) => (resolveStopped = resolve));

  // A second signal during the wait for in-flight requests joins the same close: settle once.
  let settled = false;
  const settle = (code: number) => {
    if (settled) return;
    settled = true;
    resolveStopped(code);
  };
  const closeAndExit = (timeoutMs: number) =>
    app.close(timeoutMs).then(
      () => {
        if (!settled) app.logger.info('stopped');
        settle(0);
      },
      (err: unknown) => {
        if (!settled) app.logger.error({ err }, 'error while stopping');
        settle(1);
      },
    );

  let everReady = app.isReady();
  app.whenReady().then(
    () => (everReady = true),
    () => undefined,
  );
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) {
      app.logger.warn({ signal }, 'second signal: stopping now, in-flight requests cut');
      clearTimeout(drainTimer);
      void closeAndExit(0);
      return;
    }
    signalled = true;
    app.startDraining();
    // A pod that was never ready was never an endpoint: no one must be given time to stop sending
    // to it (a pod deleted during discovery stops at once, not after the drain delay).
    const delayS = everReady ? drain_delay_s : 0;
    app.logger.info({ signal, drain_delay_s: delayS, timeout_s }, 'draining: not ready, still serving');
    drainTimer = setTimeout(() => {
      app.logger.info({ timeout_s }, 'closing the listener: waiting for in-flight requests');
      void closeAndExit(timeout_s * 1000);
    }, delayS * 1000);
  };

  // Never removed: a signal in the moment between "stopped" and the exit must not kill the
  // process with the default action (exit 143) after a clean shutdown.
  for (const signal of SIGNALS) source.on(signal, onSignal);
  // SIGHUP reloads; a configuration that is about to stop serving need not change.
  source.on('SIGHUP', () => {
    if (signalled) return;
    app.logger.info({ signal: 'SIGHUP' }, 'reloading the configuration');
    void app.reload();
  });
  return { stopped };
}
