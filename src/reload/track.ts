/**
 * A provider with its in-flight calls counted: a provider retired by a reload closes
 * as soon as the last call through it is done.
 */
import type { AnswerNeed } from '../provider/answer.js';
import type { Provider } from '../provider/providers.js';

/** A provider with its in-flight calls counted, so a retired one closes when idle. */
export interface TrackedProvider extends Provider {
  whenIdle(): Promise<void>;
}

export function track(provider: Provider): TrackedProvider {
  let inFlight = 0;
  let waiters: (() => void)[] = [];
  // A delegate, not a copy: whatever else the provider exposes (getters included) stays live.
  return Object.assign(Object.create(provider) as Provider, {
    async fetchAnswer(token: string, need?: AnswerNeed) {
      inFlight++;
      try {
        return await provider.fetchAnswer(token, need);
      } finally {
        if (--inFlight === 0) {
          const wake = waiters;
          waiters = [];
          for (const w of wake) w();
        }
      }
    },
    whenIdle: () => (inFlight === 0 ? Promise.resolve() : new Promise<void>((resolve) => waiters.push(resolve))),
  });
}
