/**
 * The cache shared by every replica (Redis or Valkey), between each pod's own cache and the
 * provider: with 50 pods, a token costs its provider one call per life, not 50.
 *
 * - What Redis holds is useless without the token. The key is a SHA-256 of (provider binding,
 *   token); the value is AES-256-GCM under a key derived from the token by HKDF with another salt
 *   and info, so neither reveals the other. The provider's binding (name, issuer, audience) is
 *   both in the key and the associated data: a changed provider misses, and an entry copied onto
 *   another provider's key fails to decrypt.
 * - One provider call across pods: the first pod to miss takes a lock (`SET NX PX`) and asks the
 *   provider; the others poll for its answer for at most the provider's `timeout_ms`, and make
 *   their own call if it does not come (the holder died, or its call failed and freed the lock).
 *   A written answer leaves the lock to expire, so a pod that missed a moment before the write
 *   waits for that answer instead of asking again.
 * - Redis is never a point of failure: every operation is bounded by `timeout_ms` and counted
 *   when it fails; a breaker stops asking a Redis that keeps failing; a disconnected client
 *   queues nothing (ioredis `enableOfflineQueue: false`) and reconnects with backoff in the
 *   background. On any of these the lookup goes on as if there were no shared cache.
 *
 * Why ioredis: a per-command timeout and a fail-fast mode with no offline queue are options, not
 * code of ours; TLS takes node:tls options (a private CA beside the system ones); it is maintained
 * by Redis, typed, and small (five dependencies). iovalkey is a young fork of it; node-redis
 * queues commands while disconnected unless told otherwise at every call.
 */
import { createCipheriv, createDecipheriv, hash, hkdfSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { rootCertificates } from 'node:tls';
import { Redis, type RedisOptions } from 'ioredis';
import type { Clock } from '../clock.js';
import type { SharedCacheConfig } from '../config/schema.js';
import type { Logger } from '../observability/log.js';
import type { Metrics, SharedCacheOperation } from '../observability/metrics.js';
import { createSharedBreaker, type SharedBreaker } from './shared-breaker.js';
import { readPasswordFile } from './shared-files.js';

/** What the shared cache needs of a provider: what binds an entry to it, and how long to wait for it. */
export interface SharedSource {
  readonly name: string;
  /** Part of the binding: a provider whose issuer changes reads none of the old entries. */
  readonly issuer?: string;
  readonly audience?: readonly string[] | undefined;
  /** The provider's `timeout_ms`: the longest wait for another pod's call. */
  readonly config?: { readonly timeout_ms: number };
}

/** An answer, and where it came from. */
export interface SharedLoad {
  readonly claims: Record<string, unknown>;
  /** Another pod's answer, read from Redis: kept locally no longer than `untilMs`. */
  readonly shared: boolean;
  /** End of the shared entry's life (epoch milliseconds); Infinity for this pod's own call. */
  readonly untilMs: number;
}

export interface LoadOptions {
  /** Asks the provider (this pod's own call). */
  readonly fetch: () => Promise<Record<string, unknown>>;
  /** The life SPEC §3.6 gives this answer from now (milliseconds); ≤ 0: not shared. */
  readonly lifeMs: (claims: Record<string, unknown>) => number;
  /**
   * A background refresh: a shared entry is taken only if it lives past this (epoch
   * milliseconds), i.e. another pod has refreshed it already.
   */
  readonly usableAfterMs?: number;
  /**
   * What the route needs (`introspection` for `introspect: always`): an answer for one need is kept
   * under its own key, so it never stands in for another (SPEC §9). Default `any`.
   */
  readonly need?: string;
}

export interface SharedCache {
  /** The answer from Redis, from another pod's call, or from `fetch` (then written to Redis). */
  load(source: SharedSource, token: string, options: LoadOptions): Promise<SharedLoad>;
  /** 1 while connected and asked; 0 while disconnected or paused after failures. */
  up(): number;
  close(): Promise<void>;
}

export interface SharedCacheDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Lifetimes, compared with the token's `exp` (the injected clock). */
  readonly clock: Clock;
  /** Waits and the breaker's pauses (milliseconds, monotonic); performance.now by default. */
  readonly monotonicMs?: () => number;
  /** The breaker's timing; tests shorten it. */
  readonly breaker?: { firstPauseMs?: number; maxPauseMs?: number; failures?: number };
}

/** The wait for another pod's call when its provider has no `timeout_ms` to give (milliseconds). */
const DEFAULT_WAIT_MS = 2000;
/** First and longest pause between two looks for another pod's answer (milliseconds). */
const POLL_FIRST_MS = 2;
const POLL_MAX_MS = 20;
/** Envelope: version byte, 12-byte nonce, 16-byte GCM tag, ciphertext. */
const VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEADER_BYTES = 1 + NONCE_BYTES + TAG_BYTES;

type Result<T> = { ok: true; value: T } | { ok: false };
const SKIPPED: Result<never> = { ok: false };

/** Where one (provider, token) lives in Redis, and how its value is sealed. */
interface Slot {
  readonly key: string;
  readonly lock: string;
  readonly secret: Buffer;
  readonly aad: Buffer;
}

/** Normalised as issuers are compared everywhere (one trailing `/` dropped). */
function bindingOf(source: SharedSource): string {
  return JSON.stringify([source.name, (source.issuer ?? '').replace(/\/$/, ''), source.audience ?? null]);
}

/**
 * The key and the sealing key come from the token by two unrelated derivations (a SHA-256 with
 * one label, an HKDF with another salt): the key in Redis says nothing about how to open a value.
 */
export function slotOf(prefix: string, source: SharedSource, token: string, need = 'any'): Slot {
  const binding = need === 'any' ? bindingOf(source) : `${bindingOf(source)}\0${need}`;
  const id = hash('sha256', `tollgate shared-cache key\0${binding}\0${token}`, 'base64url');
  const secret = Buffer.from(hkdfSync('sha256', token, 'tollgate shared-cache seal v1', `answer\0${binding}`, 32));
  return { key: `${prefix}a:${id}`, lock: `${prefix}l:${id}`, secret, aad: Buffer.from(`tollgate\0${binding}`) };
}

export function seal(slot: Slot, claims: Record<string, unknown>, untilMs: number): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', slot.secret, nonce);
  cipher.setAAD(slot.aad);
  const body = Buffer.concat([cipher.update(JSON.stringify({ c: claims, u: untilMs }), 'utf8'), cipher.final()]);
  return Buffer.concat([Buffer.of(VERSION), nonce, cipher.getAuthTag(), body]);
}

/** The answer in a value, or undefined when it is not one this slot sealed (copied, corrupted, garbage). */
export function open(slot: Slot, value: Buffer): { claims: Record<string, unknown>; untilMs: number } | undefined {
  if (value.length <= HEADER_BYTES || value[0] !== VERSION) return undefined;
  try {
    const decipher = createDecipheriv('aes-256-gcm', slot.secret, value.subarray(1, 1 + NONCE_BYTES));
    decipher.setAAD(slot.aad);
    decipher.setAuthTag(value.subarray(1 + NONCE_BYTES, HEADER_BYTES));
    const text = Buffer.concat([decipher.update(value.subarray(HEADER_BYTES)), decipher.final()]).toString('utf8');
    const parsed = JSON.parse(text) as { c?: unknown; u?: unknown };
    const claims = parsed.c;
    if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return undefined;
    if (typeof (claims as Record<string, unknown>).active !== 'boolean' || typeof parsed.u !== 'number') return undefined;
    return { claims: claims as Record<string, unknown>, untilMs: parsed.u };
  } catch {
    return undefined;
  }
}

/** ioredis options from `cache.shared`: only what the URL and files say, nothing from a query string. */
export function redisOptions(settings: SharedCacheConfig): RedisOptions {
  const url = new URL(settings.url);
  const tls = url.protocol === 'rediss:';
  const db = url.pathname.replace(/^\//, '');
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 6379 : Number(url.port),
    ...(db === '' ? {} : { db: Number(db) }),
    ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
    ...(settings.password_file !== null
      ? { password: readPasswordFile(settings.password_file) }
      : url.password === ''
        ? {}
        : { password: decodeURIComponent(url.password) }),
    ...(tls
      ? {
          tls: {
            servername: url.hostname,
            ...(settings.ca_file === null ? {} : { ca: [...rootCertificates, readFileSync(settings.ca_file, 'utf8')] }),
          },
        }
      : {}),
    // Fail fast: a command while disconnected is refused at once, never queued, never retried.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    // A backstop that empties ioredis's queue of commands a stopped Redis never answers; the
    // operation's own deadline (timeout_ms) is kept by the shared cache itself.
    commandTimeout: Math.max(1000, settings.timeout_ms * 10),
    connectTimeout: Math.max(1000, settings.timeout_ms * 20),
    // Reconnect in the background: 100 ms doubling to 2 s, forever.
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), 2000),
  };
}

export function createSharedCache(settings: SharedCacheConfig, deps: SharedCacheDeps): SharedCache {
  const { metrics, logger, clock } = deps;
  const monotonicMs = deps.monotonicMs ?? (() => performance.now());
  const timeoutMs = settings.timeout_ms;
  const where = new URL(settings.url).host; // never the password
  const breaker: SharedBreaker = createSharedBreaker({
    ...deps.breaker,
    now: monotonicMs,
    onChange: (open, pauseMs) =>
      open
        ? logger.warn({ redis: where, pause_ms: pauseMs }, 'shared cache: failing, not asked for a while')
        : logger.info({ redis: where }, 'shared cache: answering again'),
  });
  const redis = new Redis(redisOptions(settings));
  let closed = false;
  let reportedDown = false;
  redis.on('ready', () => {
    reportedDown = false;
    logger.info({ redis: where }, 'shared cache connected');
  });
  // ioredis emits every connection error; without a listener one would crash the process. One
  // line per outage, not one per reconnection attempt.
  redis.on('error', (err: Error & { code?: string }) => {
    if (reportedDown || closed) return;
    reportedDown = true;
    logger.warn({ redis: where, err: { code: err.code, message: err.message } }, 'shared cache unreachable: working without it');
  });

  const errors = {
    read: metrics.sharedCacheErrors.labels('read'),
    write: metrics.sharedCacheErrors.labels('write'),
    lock: metrics.sharedCacheErrors.labels('lock'),
  };
  const skipped = {
    read: metrics.sharedCacheSkipped.labels('read'),
    write: metrics.sharedCacheSkipped.labels('write'),
    lock: metrics.sharedCacheSkipped.labels('lock'),
  };

  /**
   * One Redis operation, bounded by timeout_ms by our own timer (ioredis's commandTimeout, a
   * backstop here, does not cover every path, a MULTI among them, and rejects on a busy turn). A reply error (a wrong type, out of memory)
   * is counted but is no sign of a broken Redis, so it leaves the breaker alone.
   */
  const attempt = async <T>(operation: SharedCacheOperation, run: () => Promise<T>): Promise<Result<T>> => {
    if (closed || redis.status !== 'ready' || !breaker.allow()) {
      skipped[operation].inc();
      return SKIPPED;
    }
    let timer: NodeJS.Timeout | undefined;
    try {
      const value = await Promise.race([
        run(),
        new Promise<never>((_, reject) => {
          // Timers run before I/O in an event-loop turn: after a busy turn (a loaded pod) the
          // timer would fire although the answer is already waiting in the socket. setImmediate
          // lets that I/O be read first, so only a Redis that really did not answer times out.
          timer = setTimeout(() => setImmediate(() => reject(new Error('shared cache: timed out'))), timeoutMs);
        }),
      ]);
      breaker.success();
      return { ok: true, value };
    } catch (err) {
      errors[operation].inc();
      if ((err as Error).name !== 'ReplyError') breaker.failure();
      else logger.debug({ operation, err: { message: (err as Error).message } }, 'shared cache: reply error');
      return SKIPPED;
    } finally {
      clearTimeout(timer);
    }
  };

  /** A shared entry that is still alive for this pod, or undefined (an unreadable one is counted). */
  const read = async (slot: Slot, usableAfterMs: number): Promise<Result<SharedLoad | undefined>> => {
    const got = await attempt('read', () => redis.getBuffer(slot.key));
    if (!got.ok) return SKIPPED;
    if (got.value === null) return { ok: true, value: undefined };
    const entry = open(slot, got.value);
    if (entry === undefined) {
      errors.read.inc();
      return SKIPPED;
    }
    if (entry.untilMs <= Math.max(clock.now(), usableAfterMs)) return { ok: true, value: undefined };
    return { ok: true, value: { claims: entry.claims, shared: true, untilMs: entry.untilMs } };
  };

  const tryLock = (slot: Slot, lockMs: number) =>
    attempt('lock', () => redis.set(slot.lock, randomUUID(), 'PX', lockMs, 'NX')).then((r) =>
      r.ok ? ({ ok: true, value: r.value === 'OK' } as const) : SKIPPED,
    );

  /** This pod's own call; its answer is written for the others (a held lock is freed only when none is). */
  const own = async (slot: Slot, options: LoadOptions, holdsLock: boolean): Promise<SharedLoad> => {
    let claims: Record<string, unknown>;
    try {
      claims = await options.fetch();
    } catch (err) {
      // Free the lock so a waiting pod asks at once instead of waiting out the timeout.
      if (holdsLock) void attempt('lock', () => redis.del(slot.lock));
      throw err;
    }
    const lifeMs = Math.floor(options.lifeMs(claims));
    if (lifeMs > 0) {
      const value = seal(slot, claims, clock.now() + lifeMs);
      // Not awaited: the request goes on; the write is bounded and counted like any operation.
      // The lock is left to expire: freed now, a pod that missed just before this write could
      // take it and ask the provider again; held, that pod waits and reads this answer.
      void attempt('write', () => redis.set(slot.key, value, 'PX', lifeMs));
    } else if (holdsLock) {
      void attempt('lock', () => redis.del(slot.lock));
    }
    return { claims, shared: false, untilMs: Infinity };
  };

  const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

  return {
    async load(source, token, options) {
      const slot = slotOf(settings.key_prefix, source, token, options.need);
      const usableAfterMs = options.usableAfterMs ?? -Infinity;
      const first = await read(slot, usableAfterMs);
      if (!first.ok) return own(slot, options, false);
      if (first.value !== undefined) return first.value;

      const waitMs = source.config?.timeout_ms ?? DEFAULT_WAIT_MS;
      const locked = await tryLock(slot, waitMs);
      if (!locked.ok) return own(slot, options, false);
      if (locked.value) return own(slot, options, true);

      // Another pod is asking: wait for its answer, at most the provider's timeout.
      const deadline = monotonicMs() + waitMs;
      let pauseMs = POLL_FIRST_MS;
      for (;;) {
        const left = deadline - monotonicMs();
        if (left <= 0) return own(slot, options, false);
        await sleep(Math.min(pauseMs, left));
        pauseMs = Math.min(pauseMs * 2, POLL_MAX_MS);
        const seen = await read(slot, usableAfterMs);
        if (!seen.ok) return own(slot, options, false);
        if (seen.value !== undefined) return seen.value;
        // No answer yet: take over if the holder gave up (its call failed, or its lock expired).
        const retaken = await tryLock(slot, waitMs);
        if (!retaken.ok) return own(slot, options, false);
        if (!retaken.value) continue;
        // The holder may have written its answer just before its lock expired, between the two looks.
        const late = await read(slot, usableAfterMs);
        if (late.ok && late.value !== undefined) {
          void attempt('lock', () => redis.del(slot.lock));
          return late.value;
        }
        return own(slot, options, true);
      }
    },
    up: () => (!closed && redis.status === 'ready' && !breaker.isOpen() ? 1 : 0),
    async close() {
      closed = true;
      redis.disconnect();
    },
  };
}
