// `npm run test:mutation [module…]`: Stryker on each security-critical module in turn (see
// stryker.config.mjs), then one table of scores. Incremental: a second run re-tests only what
// changed. Reports: .cache/stryker/<module>-report.json (mutation-testing-report-schema).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { MODULES } from '../stryker.config.mjs';

const wanted = process.argv.slice(2);
const names = wanted.length > 0 ? wanted : Object.keys(MODULES);
const rows = [];
let failed = false;
for (const name of names) {
  const started = Date.now();
  const run = spawnSync('npx', ['stryker', 'run'], { stdio: 'inherit', env: { ...process.env, MUTATE: name } });
  if (run.status !== 0) failed = true;
  const counts = { Killed: 0, Timeout: 0, Survived: 0, NoCoverage: 0, CompileError: 0, RuntimeError: 0, Ignored: 0 };
  const survivors = [];
  try {
    const report = JSON.parse(readFileSync(`.cache/stryker/${name}-report.json`, 'utf8'));
    for (const [file, { mutants }] of Object.entries(report.files)) {
      for (const m of mutants) {
        counts[m.status] = (counts[m.status] ?? 0) + 1;
        if (m.status === 'Survived' || m.status === 'NoCoverage')
          survivors.push(`${file}:${m.location.start.line} ${m.mutatorName} → ${JSON.stringify(m.replacement)}`);
      }
    }
  } catch {
    failed = true;
  }
  const detected = counts.Killed + counts.Timeout;
  const valid = detected + counts.Survived + counts.NoCoverage;
  rows.push({
    name,
    ...counts,
    score: valid === 0 ? 'n/a' : `${((100 * detected) / valid).toFixed(1)} %`,
    minutes: ((Date.now() - started) / 60_000).toFixed(1),
    survivors,
  });
}

console.log('\nmodule     | killed | timeout | survived | no cov | type errors | score   | minutes');
for (const r of rows) {
  console.log(
    `${r.name.padEnd(10)} | ${String(r.Killed).padStart(6)} | ${String(r.Timeout).padStart(7)} | ${String(r.Survived).padStart(8)} | ${String(r.NoCoverage).padStart(6)} | ${String(r.CompileError).padStart(11)} | ${r.score.padStart(7)} | ${r.minutes}`,
  );
}
for (const r of rows) for (const s of r.survivors) console.log(`survived: ${s}`);
process.exit(failed ? 1 : 0);
