/**
 * A steady, bounded load from a second process (run with `node --import tsx`): CONCURRENCY
 * workers, each sending GET requests one after another over undici keep-alive connections, until
 * MAX_REQUESTS were sent in all, MAX_MS passed, or the worker met a connection error (the
 * listener has closed: it stops, as a client whose endpoint was removed would). It prints one
 * JSON summary on stdout: every request's result, in the order they finished.
 *
 * Arguments: URL TOKEN CONCURRENCY MAX_REQUESTS MAX_MS
 */
import { Agent, request } from 'undici';

export interface LoadResult {
  /** Worker index. */
  worker: number;
  status: number | null;
  /** The answer's `Connection` header (`close` once tollgate drains). */
  connection: string | null;
  /** An error's code (`ECONNREFUSED`, `UND_ERR_SOCKET`, …), null for an answer. */
  error: string | null;
}

export interface LoadSummary {
  results: LoadResult[];
  stoppedBy: 'max_requests' | 'max_ms' | 'connection_error';
}

const [url, token, concurrencyArg, maxRequestsArg, maxMsArg] = process.argv.slice(2);
const concurrency = Number(concurrencyArg);
const maxRequests = Number(maxRequestsArg);
const maxMs = Number(maxMsArg);
if (!url || !token || !(concurrency > 0) || !(maxRequests > 0) || !(maxMs > 0)) {
  process.stderr.write('usage: load-client URL TOKEN CONCURRENCY MAX_REQUESTS MAX_MS\n');
  process.exit(2);
}

const agent = new Agent({ keepAliveTimeout: 30_000, connections: concurrency });
const results: LoadResult[] = [];
const deadline = Date.now() + maxMs;
let sent = 0;
let stoppedBy: LoadSummary['stoppedBy'] = 'max_ms';

async function worker(index: number): Promise<void> {
  while (true) {
    if (sent >= maxRequests) {
      stoppedBy = 'max_requests';
      return;
    }
    if (Date.now() >= deadline) return;
    const n = sent++;
    try {
      const res = await request(`${url}/load/${index}/${n}`, {
        dispatcher: agent,
        headers: { authorization: `Bearer ${token}` },
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
      await res.body.text();
      const connection = res.headers.connection;
      results.push({
        worker: index,
        status: res.statusCode,
        connection: typeof connection === 'string' ? connection : null,
        error: null,
      });
    } catch (err) {
      const e = err as { code?: string; cause?: { code?: string } };
      results.push({ worker: index, status: null, connection: null, error: e.cause?.code ?? e.code ?? String(err) });
      stoppedBy = 'connection_error';
      return;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, (_, i) => worker(i)));
await agent.close();
process.stdout.write(`${JSON.stringify({ results, stoppedBy } satisfies LoadSummary)}\n`);
