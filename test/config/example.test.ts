/**
 * The published configuration artefacts stay true: the example shows a valid configuration, and
 * config/tollgate.schema.json is what the zod schema generates.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { configJsonSchema } from '../../dev/schema.js';
import { loadConfig } from '../../src/config/load.js';
import { DEFAULT_CLAIM_HEADERS } from '../../src/config/schema.js';

t.test('config/tollgate.example.yaml is valid and shows the defaults', async (t) => {
  const result = loadConfig({ configPath: 'config/tollgate.example.yaml', env: { ACME_SECRET: 'example-secret' } });
  if (!result.ok) return t.fail(`example is invalid: ${JSON.stringify(result.problems)}`);
  const c = result.config;
  t.equal(c.providers[0]?.client_secret, 'example-secret', '${ACME_SECRET} substituted');
  t.same(c.cache, { ttl_s: 60, negative_ttl_s: 5, max_entries: 100000, stale_if_error_s: 0, refresh_ahead_s: 5 });
  t.same(c.headers.claims, DEFAULT_CLAIM_HEADERS);
  t.equal(c.routes.length, 4);
});

t.test('config/tollgate.schema.json is up to date (npm run schema)', async (t) => {
  t.equal(readFileSync('config/tollgate.schema.json', 'utf8'), configJsonSchema());
});
