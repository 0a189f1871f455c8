/**
 * Loaded into the proxies under test (`node --expose-gc --require …`) by the benchmark only. On
 * SIGUSR2 it collects garbage and writes process.memoryUsage() to BENCH_GC_PROBE_FILE, so the
 * harness can tell memory a proxy keeps from garbage V8 has not yet collected (its young
 * generation alone grows by tens of MB under a stream of 1 MB bodies).
 */
'use strict';
const { writeFileSync, renameSync } = require('node:fs');

const file = process.env.BENCH_GC_PROBE_FILE;
if (file && typeof globalThis.gc === 'function') {
  process.on('SIGUSR2', () => {
    globalThis.gc();
    globalThis.gc();
    writeFileSync(`${file}.tmp`, JSON.stringify(process.memoryUsage()));
    renameSync(`${file}.tmp`, file);
  });
}
