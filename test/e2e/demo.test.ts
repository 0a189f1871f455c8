/**
 * `npm run demo` as a newcomer meets it: the printed curl lines work as pasted (curl alone), and
 * SIGINT stops everything with exit 0.
 */
import { execFile, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import t from 'tap';
import { withTimeout } from '../helpers/tollgate.js';

const run = promisify(execFile);

t.test('the demo prints curl lines that work, and Ctrl-C stops it', async (t) => {
  const demo = spawn(process.execPath, ['--import', 'tsx', 'dev/demo.ts'], {
    // Port 0: the demo must not depend on 7080/7081 being free on the test machine.
    env: { ...process.env, TOLLGATE_LISTEN: '127.0.0.1:0', TOLLGATE_ADMIN_LISTEN: '127.0.0.1:0' },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group, as a terminal's Ctrl-C would signal
  });
  const exited = new Promise<number | null>((resolve) => demo.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (demo.exitCode === null) process.kill(-demo.pid!, 'SIGKILL');
  });
  let stderr = '';
  demo.stderr.on('data', (c: Buffer) => (stderr += c.toString()));

  const curls: string[] = [];
  await withTimeout(
    new Promise<void>((resolve) => {
      createInterface({ input: demo.stdout }).on('line', (line) => {
        if (line.trimStart().startsWith('curl ')) curls.push(line.trim());
        if (line.includes('Ctrl-C stops everything')) resolve();
      });
    }),
    60_000,
    'the demo did not print its curl lines within 60 s',
  ).catch((err: Error) => {
    throw new Error(`${err.message}\nstderr:\n${stderr}`);
  });
  t.equal(curls.length, 10, 'ten curl lines');

  const curl = async (line: string) => (await run('sh', ['-c', line], { timeout: 10_000 })).stdout;
  const [allowed, noToken, noScope, badToken, tenant, wrongTenant, jwt, tamperedJwt, open, metrics] = curls as [
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
    string,
  ];
  const allowedOut = await curl(allowed);
  t.match(allowedOut, /^HTTP\/1\.1 200/);
  t.match(allowedOut, /"x-auth-subject": "service-account:demo-app"/);
  t.match(allowedOut, /"x-auth-scope": "orders:read"/);
  t.match(await curl(noToken), /^HTTP\/1\.1 401[\s\S]*www-authenticate: Bearer realm="tollgate"\r?\n/i);
  t.match(await curl(noScope), /^HTTP\/1\.1 403[\s\S]*error="insufficient_scope"/);
  t.match(await curl(badToken), /^HTTP\/1\.1 401[\s\S]*error="invalid_token"/);
  const tenantOut = await curl(tenant);
  t.match(tenantOut, /^HTTP\/1\.1 200/);
  t.match(tenantOut, /"x-auth-provider": "globex"/);
  t.match(await curl(wrongTenant), /^HTTP\/1\.1 401[\s\S]*error="invalid_token"/);
  const jwtOut = await curl(jwt);
  t.match(jwtOut, /^HTTP\/1\.1 200/);
  t.match(jwtOut, /"x-auth-provider": "initech"/);
  t.match(jwtOut, /"x-auth-scope": "orders:read"/);
  t.match(await curl(tamperedJwt), /^HTTP\/1\.1 401[\s\S]*error="invalid_token"/);
  const openOut = await curl(open);
  t.match(openOut, /^HTTP\/1\.1 200/);
  t.match(openOut, /"identity": \{\}/, 'the spoofed X-Auth-Subject did not reach the API');
  const metricsOut = await curl(metrics);
  t.match(metricsOut, /tollgate_requests_total\{outcome="allowed",provider="demo"\} 1/);
  t.match(metricsOut, /tollgate_jwt_verifications_total\{provider="initech",result="valid"\} 1/);

  process.kill(-demo.pid!, 'SIGINT');
  t.equal(await withTimeout(exited, 15_000, 'the demo did not stop within 15 s of SIGINT'), 0);
});
