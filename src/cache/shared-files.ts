/**
 * The files `cache.shared` names: the Redis password (`password_file`, a Kubernetes secret) and a
 * private CA (`ca_file`). A configuration that names them is loaded only if they can be read, so
 * `check-config` reports a bad one by its path; the content is read again when the client starts
 * and never reaches a log line or a message.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

const FILE_KEYS = ['password_file', 'ca_file'] as const;

/**
 * Makes the raw tree's `cache.shared.*_file` paths absolute (relative ones start at `baseDir`,
 * like every other file a configuration names) and checks each one can be read.
 */
export function resolveSharedCacheFiles(
  raw: Record<string, unknown>,
  baseDir: string,
  problem: (key: string, message: string) => void,
): void {
  const cache = raw.cache;
  if (typeof cache !== 'object' || cache === null) return;
  const shared = (cache as Record<string, unknown>).shared;
  if (typeof shared !== 'object' || shared === null) return;
  const tree = shared as Record<string, unknown>;
  for (const key of FILE_KEYS) {
    const file = tree[key];
    if (typeof file !== 'string' || file === '') continue; // the schema reports the wrong type
    const absolute = path.resolve(baseDir, file);
    tree[key] = absolute;
    try {
      const text = readFileSync(absolute, 'utf8');
      if (key === 'ca_file' && !text.includes('-----BEGIN CERTIFICATE-----')) problem(key, `${file} holds no PEM certificate`);
    } catch (err) {
      problem(key, `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
    }
  }
}

/** The password in `password_file`; a trailing newline (`echo > file`, a Secret's encoding) is no part of it. */
export function readPasswordFile(file: string): string {
  return readFileSync(file, 'utf8').replace(/\r?\n$/, '');
}
