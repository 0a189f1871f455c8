/**
 * Reading the files a configuration names — the configuration itself, providers_dir entries,
 * secrets, keys — with bounded work. A FIFO would block the (synchronous) read forever and freeze
 * the whole process, `/healthz` included; `/dev/zero` never ends; a symlink loop fails with ELOOP.
 * So only regular files are read (symlinks followed), and never more than a size limit.
 */
import { closeSync, fstatSync, openSync, readSync, constants } from 'node:fs';

/** The configuration file and each providers_dir file: far above any real one. */
export const CONFIG_FILE_LIMIT_BYTES = 1024 * 1024;
/** A secret, key, certificate or CA bundle (a CA bundle of a few hundred certificates fits). */
export const KEY_FILE_LIMIT_BYTES = 1024 * 1024;

/** `reason`: an errno code (`ENOENT`) or a few words; never the file's content. */
export type ReadResult = { ok: true; bytes: Buffer } | { ok: false; reason: string };

/**
 * The whole file, or why not. Opened with
 * O_NONBLOCK so that opening a FIFO with no writer returns at once; the type is then checked on
 * the open descriptor, so a file swapped in between cannot slip past.
 */
export function readBoundedFile(file: string, limitBytes: number): ReadResult {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    return { ok: false, reason: errorCode(err) };
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return { ok: false, reason: 'EISDIR' };
    if (!stat.isFile()) return { ok: false, reason: `not a regular file (${kindOf(stat)})` };
    if (stat.size > limitBytes) return { ok: false, reason: `larger than ${limitBytes} bytes` };
    // The size may grow while we read: read at most one byte past the limit to notice.
    const buffer = Buffer.allocUnsafe(Math.min(stat.size, limitBytes) + 1);
    let length = 0;
    for (;;) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
      if (length > limitBytes) return { ok: false, reason: `larger than ${limitBytes} bytes` };
      if (length === buffer.length) break;
    }
    return { ok: true, bytes: buffer.subarray(0, length) };
  } catch (err) {
    return { ok: false, reason: errorCode(err) };
  } finally {
    closeSync(fd);
  }
}

/** Like readBoundedFile, decoded as UTF-8. */
export function readBoundedText(file: string, limitBytes: number): { ok: true; text: string } | { ok: false; reason: string } {
  const result = readBoundedFile(file, limitBytes);
  return result.ok ? { ok: true, text: result.bytes.toString('utf8') } : result;
}

function errorCode(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ELOOP') return 'ELOOP (a symbolic link loop)';
  return typeof code === 'string' ? code : 'error';
}

function kindOf(stat: import('node:fs').Stats): string {
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'a device';
  if (stat.isSocket()) return 'a socket';
  return 'not a file';
}
