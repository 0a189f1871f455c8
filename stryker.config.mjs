// Mutation testing of the security-critical modules (README, Development: "Mutation testing").
// Each module is mutated alone and judged by the tests that cover it, run through Stryker's command
// runner (tap has no Stryker plugin): the files run in one Node process (dev/tap-in-one.ts), not a
// tap process per file, which costs several times the tests themselves per mutant, and stop at the
// first failure (TAP_BAIL). `MUTATE=token,drain npx stryker run` runs a subset; `npm run
// test:mutation` runs every module in turn and prints the table README reports.
// Line ranges: only the masking in provider/providers.ts (withoutToken) and the cache key in
// cache/answers.ts (cacheKey) are in scope; move the ranges with those functions when they move.

/** @type {Record<string, { mutate: string[]; tests: string[] }>} */
export const MODULES = {
  framing: {
    mutate: ['src/proxy/framing.ts'],
    tests: [
      'test/proxy/framing.test.ts',
      'test/adversarial/request-smuggling.test.ts',
      'test/adversarial/refused-upload.test.ts',
      'test/adversarial/expect-continue.test.ts',
      'test/proxy/expect-continue.test.ts',
    ],
  },
  drain: { mutate: ['src/drain.ts'], tests: ['test/drain.test.ts'] },
  masking: {
    mutate: ['src/provider/providers.ts:452-464'],
    tests: ['test/provider/provider-error-text.test.ts', 'test/observability/logs.test.ts'],
  },
  'cache-key': { mutate: ['src/cache/answers.ts:113-119'], tests: ['test/cache/cache-key.test.ts'] },
  select: {
    mutate: ['src/proxy/select.ts'],
    tests: ['test/proxy/provider-selection.test.ts', 'test/proxy/provider-choice.test.ts'],
  },
  policy: {
    mutate: ['src/proxy/policy.ts'],
    tests: ['test/proxy/refusals.test.ts', 'test/adversarial/cached-answer-scope.test.ts'],
  },
  // peekIssuer (token.ts) is what chooses the provider: the selection tests cover it.
  token: {
    mutate: ['src/proxy/token.ts'],
    tests: ['test/proxy/token.test.ts', 'test/proxy/provider-selection.test.ts', 'test/proxy/provider-choice.test.ts'],
  },
  routes: {
    mutate: ['src/proxy/routes.ts'],
    tests: ['test/proxy/routes.test.ts', 'test/proxy/route-index.test.ts', 'test/adversarial/path-confusion.test.ts'],
  },
  headers: {
    mutate: ['src/proxy/headers.ts'],
    tests: [
      'test/proxy/headers.test.ts',
      'test/proxy/connection-header.test.ts',
      'test/adversarial/claim-header-injection.test.ts',
      'test/adversarial/underscore-header-spoof.test.ts',
      'test/adversarial/connection-header-strip.test.ts',
    ],
  },
};

const names = (process.env.MUTATE ?? Object.keys(MODULES).join(',')).split(',');
for (const name of names)
  if (!(name in MODULES)) throw new Error(`MUTATE: no module ${name} (${Object.keys(MODULES).join(', ')})`);
const selected = names.map((name) => MODULES[name]);
const tests = [...new Set(selected.flatMap((m) => m.tests))];

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  mutate: selected.flatMap((m) => m.mutate),
  testRunner: 'command',
  commandRunner: { command: `TAP_BAIL=1 node --import tsx dev/tap-in-one.ts ${tests.join(' ')} > /dev/null` },
  checkers: ['typescript'],
  tsconfigFile: 'tsconfig.json',
  // Incremental: a second run re-tests only the mutants whose code or tests changed.
  incremental: true,
  incrementalFile: `.cache/stryker/${names.join('+')}.json`,
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  timeoutMS: 20_000,
  reporters: ['clear-text', 'json', 'progress-append-only'],
  jsonReporter: { fileName: `.cache/stryker/${names.join('+')}-report.json` },
  tempDirName: '.cache/stryker-tmp',
  cleanTempDir: true,
  ignorePatterns: ['dist', 'coverage', '.tap', '.cache', 'dist-baseline', 'helm'],
};
