/**
 * Instructions per cache hit, counted by valgrind (cachegrind): a measure for tuning that the
 * machine's load does not move, where `ab.ts`'s CPU time moves by ±1.5 %.
 *
 *   apt-get install valgrind
 *   npx tsx test/bench/instructions.ts dist-baseline/cli.js dist/cli.js [bare]
 *
 * Each target (a built CLI, or `bare` for the benchmark's bare proxy) runs twice under cachegrind,
 * serving scenario (a) — one token, cache hits — for WARM and for WARM + MEASURED requests; the
 * difference of the two counts, divided by MEASURED, is what one request costs once the process
 * has started and the JIT has compiled the hot path (with a shorter warm-up, compilation still
 * running in the measured window moved the figure by several per cent). The count is split into the garbage
 * collector's share and the rest ("mutator"): a major GC falls into one window and not another,
 * so compare mutator figures. Within one invocation two runs of one build measured 472,652 and
 * 474,708 (0.4 % apart); between invocations the level of all figures moved by up to 7 % (one
 * build: 430,287 and 462,189), with how fast the load generator kept up, so compare only targets
 * measured in the same invocation.
 *
 * What it does not show: time. Under valgrind a process runs ~40× slower, so whatever happens per
 * interval rather than per request (the access log's 100 ms batches, timers) weighs more than at
 * full speed, and cache misses cost nothing: tollgate ÷ bare here (≈ 1.29) is above the CPU ratio
 * `ab.ts --baseline bare` measures (≈ 1.17). Use it to compare two builds of tollgate, and confirm
 * with ab.ts. The targets run one after the other, a target's two runs side by side (the counts
 * depend a little on how fast the load generator keeps up: run nothing else meanwhile); about
 * 2½ minutes per target. Loopback only.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { children, forkTs, startTollgateCli } from './proxy-processes.js';

const { values: args, positionals: targets } = parseArgs({
  allowPositionals: true,
  options: {
    warm: { type: 'string', default: '10000' },
    measured: { type: 'string', default: '20000' },
    /** JSON merged into tollgate's configuration, e.g. `{"access_log":false}`. */
    config: { type: 'string', default: '{}' },
  },
});
if (targets.length === 0) throw new Error('usage: instructions.ts TARGET… (a built cli.js, or bare)');
const warm = Number(args.warm);
const measured = Number(args.measured);

process.once('exit', () => children.forEach((child) => child.kill('SIGKILL')));
process.once('SIGINT', () => process.exit(130));

const dir = mkdtempSync(join(tmpdir(), 'tollgate-instructions-'));
/** node under cachegrind, counting instructions only; the output file named by IR_OUT. */
const valgrindNode = join(dir, 'valgrind-node');
writeFileSync(
  valgrindNode,
  `#!/bin/sh\nexec valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file="$IR_OUT" -q ${process.execPath} "$@"\n`,
);
chmodSync(valgrindNode, 0o755);

const { upstream, provider } = (await forkTs<{ upstream: string; provider: string }>('backends.ts')).message;
const config = {
  upstream: { url: upstream },
  providers: [{ name: 'bench', issuer: provider, client_id: 'tollgate', client_secret: 'bench-secret' }],
  cache: { ttl_s: 3600 },
  shutdown: { drain_delay_s: 0, timeout_s: 1 },
  ...(JSON.parse(args.config) as Record<string, unknown>),
};

/** Starts the target under cachegrind, serves `requests` cache hits, stops it: its count file. */
async function countedRun(target: string, requests: number, tag: string): Promise<string> {
  const out = join(dir, `${tag}.cachegrind`);
  const env = { IR_OUT: out };
  const started =
    target === 'bare'
      ? await forkTs<{ url: string }>('bare-proxy.ts', {
          execPath: valgrindNode,
          env: { ...env, BENCH_UPSTREAM_URL: upstream },
        }).then(({ child, message }) => ({ url: message.url, child }))
      : await startTollgateCli({
          name: tag,
          cli: resolve(target),
          config,
          dir,
          env,
          execPath: valgrindNode,
          readyWithinMs: 180_000,
        });
  const result = await autocannon({
    url: `${started.url}/api/orders?limit=10`,
    headers: { authorization: 'Bearer bench-ab-token' },
    connections: 10,
    amount: requests,
    timeout: 60,
  });
  const ok = result.statusCodeStats['200']?.count ?? 0;
  if (ok !== requests) throw new Error(`${target}: ${ok} of ${requests} requests answered 200`);
  const exited = new Promise((resolveExit) => started.child.once('exit', resolveExit));
  started.child.kill('SIGTERM'); // both exit normally on SIGTERM, so cachegrind writes its counts
  await exited;
  return out;
}

/** Instructions of `after` minus `before`, per function, split into GC and the rest. */
function counted(before: string, after: string): { mutator: number; gc: number } {
  const diff = join(dir, 'diff');
  writeFileSync(diff, execFileSync('cg_diff', [before, after], { maxBuffer: 1 << 28 }));
  const annotated = execFileSync('cg_annotate', ['--threshold=0', diff], { maxBuffer: 1 << 28 }).toString();
  const GC =
    /Marking|Sweep|Scaveng|Heap::|heap::|MemoryChunk|Evacuat|MarkCompact|RememberedSet|SlotSet|Worklist|BodyDescriptorBase::Iterate|SizeFromMap/;
  let mutator = 0;
  let gc = 0;
  for (const line of annotated.split('\n')) {
    const row = /^\s*(-?[\d,]+) \([^)]*\)\s+(.*)$/.exec(line);
    if (row === null || row[2]!.includes('PROGRAM TOTALS')) continue;
    const count = Number(row[1]!.replace(/,/g, ''));
    if (GC.test(row[2]!)) gc += count;
    else mutator += count;
  }
  return { mutator, gc };
}

const results: number[] = [];
for (const [i, target] of targets.entries()) {
  const [before, after] = await Promise.all([
    countedRun(target, warm, `t${i}-warm`),
    countedRun(target, warm + measured, `t${i}-all`),
  ]);
  const { mutator, gc } = counted(before, after);
  results.push(mutator / measured);
  process.stdout.write(
    `${target}: ${(mutator / measured).toFixed(0)} instructions per request, and ${(gc / measured).toFixed(0)} in the garbage collector\n`,
  );
}
for (let i = 1; i < results.length; i++) {
  process.stdout.write(
    `${targets[i]} ÷ ${targets[0]}: ${(results[i]! / results[0]!).toFixed(3)} (instructions outside the GC)\n`,
  );
}
process.exit(0);
