/**
 * A bound on tasks in flight: discoveries across all providers share one (reload.ts), so a
 * thousand providers against one issuer host do not overflow its listen backlog.
 */

/** At most `max` tasks at once; the others wait in order. */
export function createLimit(max: number): <T>(task: () => Promise<T>) => Promise<T> {
  let active = 0;
  const queue: (() => void)[] = [];
  return async (task) => {
    if (active >= max) await new Promise<void>((resolve) => queue.push(resolve));
    else active++;
    try {
      return await task();
    } finally {
      // Hand the slot straight to the next waiter, or free it.
      const next = queue.shift();
      if (next) next();
      else active--;
    }
  };
}
