/**
 * SPEC §3.4: a circuit breaker per provider. After `failures` consecutive failed calls (errors
 * and timeouts; an inactive answer is a good answer) it opens: calls are refused at once, without
 * touching the provider, for a pause of 1 s that doubles on every failed probe up to
 * `max_pause_s`. When the pause is over, exactly one call goes through as a probe while the others
 * are still refused; its success closes the breaker and resets the pause, its failure opens it
 * again for the next, longer pause. So an outage is never amplified onto a tenant's provider, and
 * a recovered one is noticed within one pause.
 *
 * Time is the injected clock's: no timer runs while the breaker is open, the pause is compared
 * with `clock.now()` when a call arrives, so tests move time instead of waiting.
 */
import { TollgateError } from '../errors.js';
import type { Clock } from '../clock.js';

export interface BreakerOptions {
  /** Consecutive failures that open the breaker (`circuit_breaker.failures`); a positive integer. */
  failures: number;
  /** Longest pause (`circuit_breaker.max_pause_s`, seconds); the first is 1 s. */
  maxPauseS: number;
}

export type BreakerState = 'closed' | 'open' | 'probing';

export interface BreakerEvents {
  /** The breaker opened (again) for `pauseMs`; `failures` consecutive failures led there. */
  onOpen?(pauseMs: number, failures: number): void;
  /** A probe succeeded: calls flow again. */
  onClose?(): void;
}

export interface Breaker {
  /**
   * Asks to make one call. Returns the ticket to report its outcome with, or throws
   * `temporarily_unavailable` with `Retry-After` set to what is left of the pause.
   */
  admit(): Ticket;
  state(): BreakerState;
}

export interface Ticket {
  /** The provider answered (active or inactive). */
  success(): void;
  /** The call failed: an error, a timeout, a malformed answer. */
  failure(): void;
  /** No call was made after all (no slot in time): the ticket gives its turn back. */
  cancel(): void;
}

const FIRST_PAUSE_MS = 1000;

export function createBreaker(options: BreakerOptions, clock: Clock, events: BreakerEvents = {}): Breaker {
  const { failures: threshold, maxPauseS } = options;
  if (!Number.isInteger(threshold) || threshold < 1) {
    throw new TypeError(`expected failures to be a positive integer, got ${threshold}`);
  }
  if (!Number.isFinite(maxPauseS) || maxPauseS <= 0) {
    throw new TypeError(`expected maxPauseS to be a positive finite number, got ${maxPauseS}`);
  }
  const maxPauseMs = Math.max(FIRST_PAUSE_MS, maxPauseS * 1000);

  let state: BreakerState = 'closed';
  let consecutive = 0;
  /** The pause the breaker opens for next (doubles on every failed probe). */
  let pauseMs = FIRST_PAUSE_MS;
  let openUntilMs = 0;

  const open = () => {
    state = 'open';
    openUntilMs = clock.now() + pauseMs;
    events.onOpen?.(pauseMs, consecutive);
    pauseMs = Math.min(pauseMs * 2, maxPauseMs);
  };

  const refuse = (remainingMs: number) =>
    new TollgateError('temporarily_unavailable', 'the provider is failing; tollgate pauses its calls to it', {
      retryAfterS: Math.max(1, Math.ceil(remainingMs / 1000)),
    });

  /** A call admitted while closed: its outcome counts only while the breaker is still closed. */
  const regular: Ticket = {
    success() {
      if (state === 'closed') consecutive = 0;
    },
    failure() {
      if (state !== 'closed') return; // calls started before it opened say nothing new
      consecutive++;
      if (consecutive >= threshold) open();
    },
    cancel() {},
  };

  const probe = (): Ticket => {
    let settled = false;
    const settle = (then: () => void) => () => {
      if (settled) return;
      settled = true;
      then();
    };
    return {
      success: settle(() => {
        state = 'closed';
        consecutive = 0;
        pauseMs = FIRST_PAUSE_MS;
        events.onClose?.();
      }),
      failure: settle(() => {
        consecutive++;
        open();
      }),
      // The pause is over already: the next call probes instead.
      cancel: settle(() => {
        state = 'open';
      }),
    };
  };

  return {
    admit() {
      if (state === 'closed') return regular;
      if (state === 'probing') throw refuse(FIRST_PAUSE_MS);
      const remainingMs = openUntilMs - clock.now();
      if (remainingMs > 0) throw refuse(remainingMs);
      state = 'probing';
      return probe();
    },
    state: () => state,
  };
}
