#!/usr/bin/env node
/**
 * `tollgate [--config FILE]` and `tollgate check-config [--config FILE] [--discover]` (SPEC §1).
 * The only place that prints to the terminal directly and the only process.exit.
 */
import './v8-flags.js'; // first: before any other module allocates
import { parseArgs } from 'node:util';
import { startApp } from './app.js';
import { formatProblems, loadConfig } from './config/load.js';
import type { Config } from './config/schema.js';
import { runUntilSignalled } from './lifecycle.js';
import { createLogger } from './observability/log.js';
import { fileSource } from './reload.js';
import { describeFailure, discoverOnce } from './provider/providers.js';

const USAGE = `Usage:
  tollgate [--config FILE]                        run the proxy (or TOLLGATE_CONFIG=FILE; none: zero-file mode)
  tollgate check-config [--config FILE] [--discover]
                                                  validate; --discover also asks each provider for its metadata
Options:
  -c, --config FILE   YAML configuration (SPEC §2)
  -h, --help          this text
`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        discover: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${USAGE}`);
    return 1;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const command = positionals[0] ?? 'run';
  if (positionals.length > 1 || (command !== 'run' && command !== 'check-config')) {
    process.stderr.write(`unknown command: ${positionals.join(' ')}\n\n${USAGE}`);
    return 1;
  }

  const result = loadConfig({ configPath: values.config });
  if (!result.ok) {
    process.stderr.write(
      `tollgate: invalid configuration (${result.problems.length} problem${result.problems.length === 1 ? '' : 's'}):\n${formatProblems(result.problems)}\n`,
    );
    return 1;
  }
  const config = result.config;
  if (command === 'check-config') return checkConfig(config, values.discover === true);

  const logger = createLogger({ level: process.env.TOLLGATE_LOG_LEVEL || 'info' });
  const app = await startApp({ config, logger, source: fileSource({ configPath: values.config }) });
  const code = await runUntilSignalled(app, config).stopped;
  // Lines are written asynchronously: flush them before the process ends, so 'stopped' is never lost.
  await new Promise<void>((resolve) => logger.flush(() => resolve()));
  return code;
}

async function checkConfig(config: Config, discover: boolean): Promise<number> {
  const lines = [
    'configuration OK',
    `  listen ${config.listen}, admin ${config.admin_listen}, upstream ${config.upstream.url}`,
    `  providers (${config.providers.length}): ${config.providers.map((p) => `${p.name} <${p.issuer}>`).join(', ')}`,
    `  routes: ${config.routes.length}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (!discover) return 0;
  let failed = 0;
  for (const provider of config.providers) {
    try {
      const { endpoint, probe } = await discoverOnce(provider);
      process.stdout.write(`  ${provider.name}: introspection at ${endpoint} (${probe})\n`);
    } catch (err) {
      failed++;
      process.stdout.write(`  ${provider.name}: discovery failed: ${describeFailure(err, provider.auth_method)}\n`);
    }
  }
  return failed === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
    // Pending timers of closed pools must not hold the process once the work is done.
    setImmediate(() => process.exit(code)).unref();
  },
  (err: unknown) => {
    process.stderr.write(`tollgate: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
