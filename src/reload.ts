/**
 * Live reload (SPEC §7): the configuration is read again, validated, its new providers started and
 * discovered, and only then is a new frozen runtime swapped in, in one assignment. Each request
 * reads the runtime once, so it sees the old configuration or the new one, never half of each.
 *
 * Unchanged providers (same settings, same key file contents) are reused as they are (their
 * connections and readiness kept). A provider that is removed or replaced is retired: its cache
 * entries are dropped at once, and it closes as soon as the introspections in flight through it
 * are done (or after a grace period). A reload that fails for any reason — a problem in a file, a
 * discovery that fails or takes too long — changes nothing: the old runtime keeps serving, the
 * failure is logged naming the file and the problem, and counted.
 *
 * Triggers: `reload()` (SIGHUP, see lifecycle.ts) and changes in the folders the configuration
 * depends on (reload/watch.ts).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import {
  loadConfig,
  validateConfig,
  type LoadOptions,
  type LoadResult,
  type Problem,
  type ValidateOptions,
} from './config/load.js';
import { keyFilesDigest } from './config/keys.js';
import type { Config, ProviderConfig } from './config/schema.js';
import type { Logger } from './observability/log.js';
import type { Metrics } from './observability/metrics.js';
import type { AnswerCache } from './cache/answers.js';
import { createProvider, describeFailure, type Provider, type ProviderDeps } from './provider/providers.js';
import { compileRuntime, type Runtime } from './runtime.js';
import { createLimit } from './reload/limit.js';
import { track, type TrackedProvider } from './reload/track.js';
import { createFolderWatch, foldersToWatch } from './reload/watch.js';
import { systemClock } from './clock.js';
import { logSigningKey } from './identity/log.js';

/** Where a reload reads the configuration from. */
export interface ConfigSource {
  /** Reads and validates the whole configuration again (file, environment, providers_dir). */
  load(): LoadResult;
  /** The configuration file, absolute; undefined in zero-file mode. Its folder is watched. */
  readonly file: string | undefined;
  /** Where a relative `providers_dir` starts: the file's folder, else the working directory. */
  readonly baseDir: string;
}

/** The configuration file (or `TOLLGATE_CONFIG`, or zero-file mode), as the CLI reads it. */
export function fileSource(options: LoadOptions = {}): ConfigSource {
  const env = options.env ?? process.env;
  const given = options.configPath ?? (env.TOLLGATE_CONFIG || undefined);
  const file = given === undefined ? undefined : path.resolve(given);
  return {
    load: () => loadConfig({ configPath: file, env }),
    file,
    baseDir: file === undefined ? process.cwd() : path.dirname(file),
  };
}

/** A raw tree, validated again on each load (providers_dir re-read): for tests and embedding. */
export function treeSource(raw: Record<string, unknown>, options: ValidateOptions = {}): ConfigSource {
  const baseDir = options.baseDir ?? process.cwd();
  return {
    load: () => validateConfig(raw, { ...options, baseDir, problems: [] }),
    file: undefined,
    baseDir,
  };
}

export type ReloadResult =
  | {
      readonly ok: true;
      /** Provider names, each in one list. */
      readonly added: readonly string[];
      readonly changed: readonly string[];
      readonly removed: readonly string[];
      readonly unchanged: readonly string[];
    }
  | { readonly ok: false; readonly problems: readonly Problem[] };

export interface ReloadOptions {
  /**
   * Discoveries in flight at once, across all providers (at start and on reload); default 32.
   * 1,000 providers against one issuer host would otherwise overflow its listen backlog, and lost
   * connection attempts are retried by TCP only after a second or more.
   */
  discoveryConcurrency?: number;
  /** Longest wait for the discovery of a reload's new providers (milliseconds); default 10,000. */
  discoveryTimeoutMs?: number;
  /**
   * Longest time a retired provider stays open for the introspections still in flight through it
   * (milliseconds); default 30,000. It closes earlier, as soon as none is left.
   */
  retireGraceMs?: number;
  /**
   * Watch the configuration file's folder and providers_dir. `debounceMs`: quiet time after the
   * last event before the re-read (milliseconds), default 250. False: reload only when asked.
   * Default: on when there is a source.
   */
  watch?: { debounceMs?: number } | false;
}

export interface LiveRuntimeOptions extends ReloadOptions {
  config: Config;
  /** Where reloads read from; without one, `reload()` re-validates nothing and fails. */
  source?: ConfigSource | undefined;
  cache: Pick<AnswerCache, 'dropProviders'>;
  logger: Logger;
  metrics: Metrics;
  providerDeps: ProviderDeps;
}

export interface LiveRuntime {
  /** The current runtime: read it once per request. */
  runtime(): Runtime;
  /** Reads, validates, discovers and swaps. Never rejects; concurrent calls share the next run. */
  reload(): Promise<ReloadResult>;
  /** Stops watching, abandons a reload in progress and closes every provider. */
  close(): Promise<void>;
}

/** Keys a reload cannot apply to a running process: they are kept, and the change is logged. */
const RESTART_ONLY = ['listen', 'admin_listen', 'upstream', 'cache'] as const;

export function createLiveRuntime(options: LiveRuntimeOptions): LiveRuntime {
  const { source, cache, logger, metrics, providerDeps } = options;
  const discoveryTimeoutMs = options.discoveryTimeoutMs ?? 10_000;
  const retireGraceMs = options.retireGraceMs ?? 30_000;
  const log = logger.child({ component: 'reload' });
  const reloads = { success: metrics.configReloads.labels('success'), failure: metrics.configReloads.labels('failure') };

  const limitDiscovery = createLimit(options.discoveryConcurrency ?? 32);
  const start = (config: ProviderConfig, onDiscoveryFailure?: (err: unknown) => void): TrackedProvider =>
    track(createProvider(config, { ...providerDeps, limitDiscovery, ...(onDiscoveryFailure ? { onDiscoveryFailure } : {}) }));

  const initial = new Map<string, Provider>(options.config.providers.map((p) => [p.name, start(p)]));
  const now = () => (providerDeps.clock ?? systemClock).now();
  let runtime = compileRuntime(options.config, initial, { nowMs: now() });
  logSigningKey(log, undefined, runtime.identity);
  let closed = false;
  /** Providers started by the reload in progress, until it swaps them in or gives up. */
  const pending = new Set<Provider>();
  /** Ends the discovery wait of the reload in progress (close()). */
  let abandon: (() => void) | undefined;
  const retiring = new Set<TrackedProvider>();

  /** Which file a problem is in, for the log line (SPEC §7: name the file and the problem). */
  const fileOf = (problemPath: string, config: Config | undefined): string => {
    const dir = config?.providers_dir ?? runtime.config.providers_dir;
    if (problemPath.startsWith('providers_dir')) {
      if (dir === undefined || source === undefined) return 'providers_dir';
      const root = path.resolve(source.baseDir, dir);
      const file = /^providers_dir\/([^:]+)/.exec(problemPath)?.[1];
      return file === undefined ? root : path.join(root, file);
    }
    if (problemPath.startsWith('TOLLGATE_')) return 'environment';
    return source?.file ?? 'environment';
  };

  /** `providers_dir/acme.yaml: issuer` for a provider from the folder, else `providers[i].issuer`. */
  const whereIs = (name: string, config: Config): string => {
    if (config.providers_dir !== undefined && source !== undefined) {
      // A folder provider's name is its file's name, and names are unique: the file is the origin.
      if (existsSync(path.join(path.resolve(source.baseDir, config.providers_dir), `${name}.yaml`)))
        return `providers_dir/${name}.yaml: issuer`;
    }
    return `providers[${config.providers.findIndex((p) => p.name === name)}].issuer`;
  };

  const fail = (problems: readonly Problem[], config?: Config): ReloadResult => {
    reloads.failure.inc();
    for (const p of problems) {
      log.error(
        { file: fileOf(p.path, config), path: p.path, problem: p.message },
        'configuration reload rejected; the previous configuration keeps serving',
      );
    }
    return { ok: false, problems };
  };

  /** The loaded configuration with the keys that need a restart kept as they are (and said so). */
  const keepRestartOnly = (next: Config): Config => {
    const current = runtime.config;
    const ignored = RESTART_ONLY.filter((key) => canonical(current[key]) !== canonical(next[key]));
    if (ignored.length === 0) return next;
    log.warn({ ignored }, 'these settings cannot change while running (listener addresses among them); restart to apply them');
    const kept: Record<string, unknown> = { ...next };
    for (const key of ignored) kept[key] = current[key];
    return Object.freeze(kept) as Config;
  };

  /** Resolves with undefined once every provider is ready, or with the first failure. */
  const discovered = (
    fresh: readonly Provider[],
    failures: { first?: { name: string; message: string }; notify?: (f: { name: string; message: string }) => void },
  ): Promise<{ name: string; message: string } | undefined> => {
    if (failures.first !== undefined) return Promise.resolve(failures.first);
    return new Promise((resolve) => {
      let left = fresh.length;
      const timer = setTimeout(() => {
        const slow = fresh.find((p) => !p.isReady());
        resolve({ name: slow?.name ?? '?', message: `no metadata within ${discoveryTimeoutMs} ms` });
      }, discoveryTimeoutMs);
      const done = (result: { name: string; message: string } | undefined) => {
        clearTimeout(timer);
        abandon = undefined;
        resolve(result);
      };
      failures.notify = done;
      abandon = () => done({ name: '', message: 'tollgate is stopping' });
      if (left === 0) return done(undefined);
      for (const p of fresh) void p.ready.then(() => --left === 0 && done(undefined));
    });
  };

  const retire = (old: readonly TrackedProvider[]): void => {
    for (const p of old) {
      retiring.add(p);
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => {
        timer = setTimeout(resolve, retireGraceMs);
        timer.unref();
      });
      void Promise.race([p.whenIdle(), grace]).then(async () => {
        clearTimeout(timer);
        if (!retiring.delete(p)) return; // close() got there first
        await p.close();
        // An introspection that was in flight at the swap may have stored its answer since.
        cache.dropProviders(new Set([p.name]));
      });
    }
  };

  const runReload = async (): Promise<ReloadResult> => {
    if (closed) return { ok: false, problems: [{ path: '(reload)', message: 'tollgate is stopping' }] };
    if (source === undefined) return fail([{ path: '(reload)', message: 'no configuration source to reload from' }]);
    let loaded: LoadResult;
    try {
      loaded = source.load();
    } catch (err) {
      // The loader returns its problems; an exception from it is a bug, said so and not blamed on a file.
      return fail([{ path: '(reload)', message: `internal error (a bug): ${String((err as Error)?.message ?? err)}` }]);
    }
    if (!loaded.ok) return fail(loaded.problems);
    const next = keepRestartOnly(loaded.config);

    const current = runtime.providers;
    const providers = new Map<string, Provider>();
    const fresh: Provider[] = [];
    const added: string[] = [];
    const changed: string[] = [];
    const unchanged: string[] = [];
    const failures: { first?: { name: string; message: string }; notify?: (f: { name: string; message: string }) => void } = {};
    for (const config of next.providers) {
      const previous = current.get(config.name);
      // Unchanged: the same settings, and the same content in its key files (a certificate renewed
      // at the same path makes the provider changed).
      if (
        previous !== undefined &&
        canonical(previous.config) === canonical(config) &&
        previous.keyFilesDigest === keyFilesDigest(config)
      ) {
        providers.set(config.name, previous);
        unchanged.push(config.name);
        continue;
      }
      const provider = start(config, (err) => {
        const failure = { name: config.name, message: describeFailure(err) };
        failures.first ??= failure;
        failures.notify?.(failure);
      });
      pending.add(provider);
      fresh.push(provider);
      providers.set(config.name, provider);
      (previous === undefined ? added : changed).push(config.name);
    }
    const removed = [...current.keys()].filter((name) => !providers.has(name));

    const giveUp = (problems: Problem[]): ReloadResult => {
      for (const p of fresh) pending.delete(p);
      // Not awaited: closing waits for a discovery still in flight, which may hang until its
      // timeout_ms; the verdict must not.
      void Promise.all(fresh.map((p) => p.close()));
      return closed ? { ok: false, problems } : fail(problems, next);
    };

    const failure = await discovered(fresh, failures);
    if (closed) return giveUp([{ path: '(reload)', message: 'tollgate is stopping' }]);
    if (failure !== undefined) {
      return giveUp([
        { path: whereIs(failure.name, next), message: `provider ${failure.name}: discovery failed: ${failure.message}` },
      ]);
    }
    let compiled: Runtime;
    try {
      compiled = compileRuntime(next, providers, { previous: runtime, nowMs: now() });
    } catch (err) {
      return giveUp([{ path: '(reload)', message: `cannot compile: ${(err as Error).message}` }]);
    }

    // The swap: from here on every new request reads the new runtime.
    const previous = runtime;
    runtime = compiled;
    for (const p of fresh) pending.delete(p);
    const retired = [...previous.providers.values()].filter((p) => providers.get(p.name) !== p) as TrackedProvider[];
    if (retired.length > 0) {
      cache.dropProviders(new Set(retired.map((p) => p.name)));
      retire(retired);
    }
    reloads.success.inc();
    logSigningKey(log, previous.identity, compiled.identity);
    log.info({ added, changed, removed, unchanged: unchanged.length }, 'configuration reloaded');
    rewatch();
    return { ok: true, added, changed, removed, unchanged };
  };

  let running: Promise<ReloadResult> | undefined;
  let queued: Promise<ReloadResult> | undefined;
  const reload = (): Promise<ReloadResult> => {
    if (running === undefined) {
      running = runReload().finally(() => {
        running = undefined;
      });
      return running;
    }
    // A change seen during a reload may have come after its read: read once more when it ends.
    queued ??= running.then(() => {
      queued = undefined;
      return reload();
    });
    return queued;
  };

  // Watching: one watcher per folder, each relevant event schedules one debounced reload.
  const watchOptions = options.watch === false || source === undefined ? undefined : (options.watch ?? {});
  const folders = createFolderWatch({ debounceMs: watchOptions?.debounceMs ?? 250, log, onChange: () => void reload() });

  function rewatch(): void {
    if (watchOptions === undefined || source === undefined || closed) return;
    const providers = [...runtime.providers.values()].map((p) => p.config);
    folders.update(foldersToWatch({ file: source.file, baseDir: source.baseDir, config: runtime.config, providers }));
  }
  rewatch();

  return {
    runtime: () => runtime,
    reload,
    async close() {
      closed = true;
      folders.close();
      abandon?.();
      const all = new Set<Provider>([...runtime.providers.values(), ...pending, ...retiring]);
      retiring.clear();
      pending.clear();
      await Promise.all([...all].map((p) => p.close()));
    },
  };
}

/** JSON with sorted keys: two configurations are the same provider when this is equal. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}
