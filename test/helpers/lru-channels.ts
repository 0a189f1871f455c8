/**
 * Everything lru-cache publishes on its diagnostics channels (`lru-cache:metrics` and the
 * `lru-cache` tracing channel) while a test runs: every operation's status, keys, values and a
 * fetch's context, as an APM agent subscribed to them would see it. Unsubscribed at teardown.
 */
import { subscribe, tracingChannel, unsubscribe } from 'node:diagnostics_channel';
import type { Test } from 'tap';

export function captureLruCacheChannels(t: Test): unknown[] {
  const seen: unknown[] = [];
  const onMessage = (message: unknown) => void seen.push(message);
  subscribe('lru-cache:metrics', onMessage);
  const tracing = tracingChannel('lru-cache');
  const handlers = { start: onMessage, end: onMessage, asyncStart: onMessage, asyncEnd: onMessage, error: onMessage };
  tracing.subscribe(handlers);
  t.teardown(() => {
    unsubscribe('lru-cache:metrics', onMessage);
    tracing.unsubscribe(handlers);
  });
  return seen;
}
