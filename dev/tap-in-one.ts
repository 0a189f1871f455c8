/**
 * Runs tap test files in this one process, for Stryker's command runner (stryker.config.mjs):
 * one Node and one tsx start per mutant instead of tap's process per file. The exit code is tap's
 * (non-zero when any assertion fails), which is all Stryker reads.
 *   node --import tsx dev/tap-in-one.ts test/a.test.ts test/b.test.ts
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';

for (const file of process.argv.slice(2)) await import(pathToFileURL(path.resolve(file)).href);
