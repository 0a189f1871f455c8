/**
 * `npm run schema`: writes config/tollgate.schema.json from the zod schema, so editors can
 * complete and check tollgate.yaml. A test fails when the committed file is out of date.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { configSchema } from '../src/config/schema.js';

export function configJsonSchema(): string {
  const schema = z.toJSONSchema(configSchema, { io: 'input', unrepresentable: 'any' });
  return `${JSON.stringify({ ...schema, title: 'tollgate configuration' }, null, 2)}\n`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', 'config', 'tollgate.schema.json');
  writeFileSync(out, configJsonSchema());
  process.stdout.write(`wrote ${out}\n`);
}
