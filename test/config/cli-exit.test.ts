/**
 * The binary's exit contract (issue 17): 0 with a summary, 1 with problems (a bad configuration,
 * a failed start such as a port in use) and never a stack trace, 2 for an internal error in one
 * line that says it is a bug; `--version`; `--help` that stands on its own.
 */
import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { CLI, ROOT } from '../helpers/binary.js';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the binary with only the environment given (plus PATH); killed after 20 s. */
function run(args: string[], env: Record<string, string> = {}, nodeArgs: string[] = []): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [...nodeArgs, CLI, ...args],
      { cwd: ROOT, env: { PATH: process.env.PATH ?? '', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const STACK = /^\s+at /m;
const GOOD = `upstream: { url: "http://127.0.0.1:8080" }
providers:
  - { name: acme, issuer: "https://login.acme.example", client_id: tollgate, client_secret: x }
`;

t.test('--version and -v print the package version', async (t) => {
  const version = (JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  for (const flag of ['--version', '-v']) {
    const r = await run([flag]);
    t.equal(r.code, 0);
    t.equal(r.stdout, `tollgate ${version}\n`);
  }
});

t.test('--help names no document a user does not have', async (t) => {
  const r = await run(['--help']);
  t.equal(r.code, 0);
  t.notMatch(r.stdout, /\bSPEC\b/);
  t.match(r.stdout, /--version/);
  // Every zero-file variable is named, those of the single provider's auth method and CA too.
  for (const name of ['TOLLGATE_AUTH_METHOD', 'TOLLGATE_CA_FILE', 'TOLLGATE_INTROSPECTION_ENDPOINT']) t.match(r.stdout, name);
});

t.test('hostile configurations: exit 1 with problems, never a stack trace', async (t) => {
  const dir = t.testdir({});
  const cases: Record<string, string> = {
    'alias-loop.yaml': `${GOOD}x: &a [*a]\n`,
    'merge.yaml': `${GOOD}cache: { !!merge <<: { ttl_s: 1 } }\nlisten: "1.2.3.4:80"\nadmin_listen: "1.2.3.4:80"\n`,
    'empty-url.yaml': GOOD.replace('"http://127.0.0.1:8080"', '""'),
    'unset.yaml': GOOD.replace('"http://127.0.0.1:8080"', '"${NOPE}"'),
    'binary.yaml': '\u0000\u00ff\ufffe{[',
  };
  for (const [name, text] of Object.entries(cases)) {
    writeFileSync(path.join(dir, name), text);
    const r = await run(['check-config', '--config', path.join(dir, name)]);
    t.equal(r.code, 1, `${name}: exit 1`);
    t.match(r.stderr, /^tollgate: invalid configuration \(\d+ problems?\):\n/, name);
    t.notMatch(r.stderr, STACK, `${name}: no stack trace`);
  }
  writeFileSync(path.join(dir, 'good.yaml'), GOOD);
  const r = await run(['check-config', '--config', path.join(dir, 'good.yaml')], {
    TOLLGATE_UPSTREAM_URL: '127.0.0.1:8080',
    TOLLGATE_LOG_LEVEL: 'verbose',
  });
  t.equal(r.code, 1);
  t.match(r.stderr, /upstream\.url: expected a URL/);
  t.match(r.stderr, /TOLLGATE_LOG_LEVEL: expected one of/);
});

t.test('a port in use: exit 1 and one line', async (t) => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as { port: number }).port;
  const dir = t.testdir({});
  const file = path.join(dir, 'tollgate.yaml');
  writeFileSync(file, `listen: "127.0.0.1:${port}"\nadmin_listen: "127.0.0.1:0"\n${GOOD}`);
  const r = await run(['--config', file], { TOLLGATE_LOG_LEVEL: 'silent' });
  t.equal(r.code, 1);
  t.equal(r.stderr, `tollgate: cannot listen on 127.0.0.1:${port}: the address is already in use\n`);
});

t.test('an internal error: exit 2, one line saying it is a bug', async (t) => {
  // Nothing a user can do makes the loader throw any more, so the fault is injected: path.dirname
  // fails for one file name.
  const dir = t.testdir({
    'fault.mjs': `import path from 'node:path';
const dirname = path.dirname;
path.dirname = (p) => { if (p.includes('INJECT')) throw new TypeError('injected\\nfault'); return dirname(p); };
`,
  });
  const r = await run(['check-config', '--config', path.join(dir, 'INJECT.yaml')], {}, [
    '--import',
    pathToFileURL(path.join(dir, 'fault.mjs')).href,
  ]);
  t.equal(r.code, 2);
  t.match(r.stderr, /^tollgate: internal error \(a bug in tollgate [^)]+, please report it\): TypeError: injected fault\n$/);
});
