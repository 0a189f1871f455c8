/**
 * The folders a live configuration depends on, watched: the configuration file's folder,
 * providers_dir, and the folders of the providers' key, certificate and CA files (renewed in
 * place, as cert-manager renews a Secret). Folders, not files, are watched, and every relevant
 * event only schedules one call of `onChange` after a quiet time: Kubernetes updates a mounted
 * ConfigMap or Secret by swapping a `..data` symlink, so the files themselves never change and
 * per-file events cannot be relied upon.
 */
import { watch, type FSWatcher } from 'node:fs';
import path from 'node:path';
import { KEY_FILE_KEYS } from '../config/keys.js';
import type { Config, ProviderConfig } from '../config/schema.js';
import type { Logger } from '../observability/log.js';

/** Whether an entry name seen in a folder's event concerns us (null: the platform gave none). */
export type Relevance = (name: string | null) => boolean;

export interface FolderWatch {
  /** Watches exactly these folders from now on (each with its own relevance test). */
  update(wanted: ReadonlyMap<string, Relevance>): void;
  /** Stops watching and cancels a scheduled call. */
  close(): void;
}

export interface WatchedFiles {
  /** The configuration file, absolute; undefined in zero-file mode. */
  readonly file: string | undefined;
  /** Where a relative providers_dir starts. */
  readonly baseDir: string;
  readonly config: Config;
  readonly providers: Iterable<ProviderConfig>;
}

/** Which folders to watch, and which names in each count. */
export function foldersToWatch(files: WatchedFiles): Map<string, Relevance> {
  const wanted = new Map<string, Relevance>();
  const add = (dir: string, relevant: (name: string) => boolean) => {
    const before = wanted.get(dir);
    // A null name (some platforms) or a `..data`-style entry (ConfigMap swap) always counts.
    wanted.set(dir, (name) => name === null || name.startsWith('..') || relevant(name) || (before?.(name) ?? false));
  };
  if (files.file !== undefined) {
    const base = path.basename(files.file);
    add(path.dirname(files.file), (name) => name === base);
  }
  const dir = files.config.providers_dir;
  if (dir !== undefined) add(path.resolve(files.baseDir, dir), (name) => name.endsWith('.yaml') && !name.startsWith('.'));
  // Key, certificate and CA files (absolute once loaded): renewed in place, they are read again.
  // One set of names per folder, so 1,000 providers' files in one folder cost an event one lookup.
  const keyFiles = new Map<string, Set<string>>();
  for (const provider of files.providers) {
    for (const key of KEY_FILE_KEYS) {
      const file = provider[key];
      if (file === undefined) continue;
      const names = keyFiles.get(path.dirname(file)) ?? new Set<string>();
      keyFiles.set(path.dirname(file), names.add(path.basename(file)));
    }
  }
  // The identity_jwt signing key: a changed key file is a key change (a reload).
  const signingKeyFile = files.config.headers.identity_jwt?.key_file;
  if (signingKeyFile !== undefined) {
    const names = keyFiles.get(path.dirname(signingKeyFile)) ?? new Set<string>();
    keyFiles.set(path.dirname(signingKeyFile), names.add(path.basename(signingKeyFile)));
  }
  for (const [folder, names] of keyFiles) add(folder, (name) => names.has(name));
  return wanted;
}

/** One watcher per folder; each relevant event schedules one debounced `onChange`. */
export function createFolderWatch(options: { debounceMs: number; log: Logger; onChange: () => void }): FolderWatch {
  const { debounceMs, log, onChange } = options;
  const watchers = new Map<string, { watcher: FSWatcher; relevant: Relevance }>();
  let debounce: NodeJS.Timeout | undefined;
  const schedule = () => {
    clearTimeout(debounce);
    debounce = setTimeout(onChange, debounceMs);
    debounce.unref();
  };

  return {
    update(wanted) {
      for (const [folder, entry] of watchers) {
        if (!wanted.has(folder)) {
          entry.watcher.close();
          watchers.delete(folder);
        }
      }
      for (const [folder, relevant] of wanted) {
        const existing = watchers.get(folder);
        if (existing !== undefined) {
          existing.relevant = relevant;
          continue;
        }
        try {
          // Not persistent: watching must never keep the process alive on its own.
          const watcher = watch(folder, { persistent: false });
          const entry = { watcher, relevant };
          watcher.on('change', (_event, name) => {
            if (entry.relevant(name === null ? null : String(name))) schedule();
          });
          watcher.on('error', (err) => {
            log.warn({ folder, cause: err.message }, 'cannot watch this folder any more; SIGHUP still reloads');
            watcher.close();
            watchers.delete(folder);
          });
          watchers.set(folder, entry);
        } catch (err) {
          log.warn({ folder, cause: (err as Error).message }, 'cannot watch this folder; SIGHUP still reloads');
        }
      }
    },
    close() {
      clearTimeout(debounce);
      for (const { watcher } of watchers.values()) watcher.close();
      watchers.clear();
    },
  };
}
