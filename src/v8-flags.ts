/**
 * V8 settings of the tollgate process, applied before tollgate's other modules load (cli.ts imports
 * this right after early-signals.ts, which allocates next to nothing).
 *
 * `--no-allocation-site-pretenuring`: V8 watches which allocation sites' objects survive young
 * collections and, past a threshold, allocates that site's objects directly in the old generation.
 * At start, provider discovery keeps many objects from undici's request and header code alive, so
 * those sites get pretenured; the upstream requests that follow allocate through the same sites,
 * and their short-lived objects then fill the old generation. Measured in the benchmark's (g) (100
 * providers, issue 6): young collections 4× slower and a full collection every second, 25 µs of
 * GC per request against 6 µs with the flag; with it, (g) costs what (a) costs.
 */
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--no-allocation-site-pretenuring');
