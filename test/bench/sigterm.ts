/**
 * Load (c): SIGTERM under load (SPEC §7). tollgate runs as its own process (the CLI, as in
 * production); 32 keep-alive clients keep sending; SIGTERM arrives after `--load-s` seconds. Every
 * request is classified: answered 200; refused at connect (ECONNREFUSED: never accepted, once the
 * listener has closed); or failed — a non-200 status or a connection lost with the request
 * written. "Zero failed accepted requests" means the last class stays empty, and the process
 * exits 0.
 *
 *   npx tsx test/bench/sigterm.ts [--load-s 3] [--drain-delay-s 2] [--clients 32] [--upstream-ms 20]
 */
import { spawn } from 'node:child_process';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Agent, request } from 'undici';
import { json, startFakeProvider } from '../helpers/fake-provider.js';
import { providerEntry } from '../helpers/tollgate.js';
import { startUpstream } from '../helpers/upstream.js';
import { numberArgs, within } from './bench-kit.js';

const args = numberArgs({ loadS: 3, drainDelayS: 2, clients: 32, upstreamMs: 20 });

const provider = await startFakeProvider({ record: false });
provider.answer(() => ({ active: true, sub: 'bench', exp: Math.floor(Date.now() / 1000) + 3600 }));
const upstream = await startUpstream({ record: false });
// Slow enough that requests are in flight when the listener closes.
upstream.handle((_req, res) => void setTimeout(() => json(res, 200, { ok: true }), args.upstreamMs));

const freePort = () =>
  new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
const port = await freePort();
const dir = mkdtempSync(join(tmpdir(), 'tollgate-sigterm-'));
const configPath = join(dir, 'tollgate.yaml');
writeFileSync(
  configPath,
  JSON.stringify({
    listen: `127.0.0.1:${port}`,
    admin_listen: `127.0.0.1:${await freePort()}`,
    upstream: { url: upstream.url },
    providers: [providerEntry('acme', provider.issuer, { introspection_endpoint: provider.introspectionEndpoint })],
    shutdown: { drain_delay_s: args.drainDelayS, timeout_s: 10 },
  }),
);

const cli = fileURLToPath(new URL('../../src/cli.ts', import.meta.url));
const child = spawn(process.execPath, ['--import', 'tsx', cli, '--config', configPath], {
  stdio: ['ignore', 'ignore', 'inherit'],
});
const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

const url = `http://127.0.0.1:${port}/orders`;
const agent = new Agent({ connections: args.clients, keepAliveTimeout: 60_000 });
const headers = { authorization: 'Bearer sigterm-bench-token' };
await within(
  (async () => {
    for (;;) {
      try {
        const res = await request(url, { headers, dispatcher: agent });
        await res.body.dump();
        if (res.statusCode === 200) return;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  })(),
  30_000,
  'tollgate did not serve within 30 s',
);

const counts = { ok: 0, refused_at_connect: 0, failed: 0 };
const failures: string[] = [];
let running = true;
let signalledAt = 0;
const worker = async () => {
  while (running) {
    try {
      const res = await request(url, { headers, dispatcher: agent, headersTimeout: 15_000, bodyTimeout: 15_000 });
      await res.body.dump();
      if (res.statusCode === 200) counts.ok++;
      else {
        counts.failed++;
        failures.push(`status ${res.statusCode} at +${Date.now() - signalledAt} ms`);
      }
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string } };
      const code = e.code ?? e.cause?.code ?? e.message;
      if (code === 'ECONNREFUSED') {
        counts.refused_at_connect++;
        await new Promise((r) => setTimeout(r, 10));
      } else {
        counts.failed++;
        failures.push(`${code}: ${e.message} at +${Date.now() - signalledAt} ms`);
      }
    }
  }
};
const workers = Array.from({ length: args.clients }, worker);
await new Promise((r) => setTimeout(r, args.loadS * 1000));
const okBefore = counts.ok;
signalledAt = Date.now();
child.kill('SIGTERM');
const code = await within(exited, (args.drainDelayS + 20) * 1000, 'tollgate did not exit after SIGTERM');
const exitMs = Date.now() - signalledAt;
running = false;
await Promise.all(workers);

const report = {
  command: `npx tsx test/bench/sigterm.ts ${process.argv.slice(2).join(' ')}`.trim(),
  exit_code: code,
  exit_after_sigterm_ms: exitMs,
  answered_200: counts.ok,
  answered_200_after_sigterm: counts.ok - okBefore,
  refused_at_connect_after_close: counts.refused_at_connect,
  failed_accepted: counts.failed,
  failures: failures.slice(0, 10),
};
const passed = code === 0 && counts.failed === 0 && counts.ok - okBefore > 0;
process.stdout.write(`${JSON.stringify({ ...report, passed }, null, 2)}\n`);
await agent.close();
await provider.close();
await upstream.close();
rmSync(dir, { recursive: true, force: true });
process.exit(passed ? 0 : 1);
