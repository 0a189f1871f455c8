/**
 * SPEC §8's image rules, read from the Dockerfile (no Docker engine runs here): multi-stage, the
 * build with every dependency, the final stage with production dependencies only on a Node.js 24
 * slim or distroless base, a non-root numeric user, an exec-form entrypoint with tini as PID 1,
 * both ports exposed; and a .dockerignore that keeps everything but the sources out of the context.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ROOT } from '../helpers/binary.js';

interface Instruction {
  op: string;
  args: string;
}

/** Instructions in order: comments dropped, `\` continuations joined, ARG defaults substituted. */
function parseDockerfile(text: string): Instruction[] {
  const joined = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ');
  const args = new Map<string, string>();
  const out: Instruction[] = [];
  for (const line of joined.split('\n')) {
    const m = /^\s*([A-Za-z]+)\s+(.*\S)\s*$/.exec(line);
    if (!m) continue;
    const op = m[1]!.toUpperCase();
    let rest = m[2]!.replace(/\s+/g, ' ');
    if (op === 'ARG') {
      const [name, value] = rest.split('=', 2);
      if (value !== undefined) args.set(name!, value);
    }
    rest = rest.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a?: string, b?: string) => args.get((a ?? b)!) ?? whole);
    out.push({ op, args: rest });
  }
  return out;
}

/** Stages as lists of instructions, each named by its FROM line. */
function stages(instructions: Instruction[]): { from: string; name: string | undefined; body: Instruction[] }[] {
  const result: { from: string; name: string | undefined; body: Instruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.op === 'FROM') {
      const m = /^(?:--platform=\S+ )?(\S+)(?: AS (\S+))?$/i.exec(ins.args);
      result.push({ from: m?.[1] ?? ins.args, name: m?.[2], body: [] });
    } else result.at(-1)?.body.push(ins);
  }
  return result;
}

const dockerfile = parseDockerfile(readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8'));
const all = stages(dockerfile);
const build = all[0]!;
const final = all.at(-1)!;
const runs = (stage: typeof build) => stage.body.filter((i) => i.op === 'RUN').map((i) => i.args);

t.test('multi-stage: the build has every dependency, the final stage production ones only', async (t) => {
  t.ok(all.length >= 2, 'at least two stages');
  t.ok(
    runs(build).some((r) => /\bnpm ci\b/.test(r) && !/--omit=dev|--production/.test(r)),
    'the build stage installs every dependency with npm ci',
  );
  t.ok(
    runs(build).some((r) => /\bnpm run build\b/.test(r)),
    'and compiles',
  );
  t.ok(
    runs(final).some((r) => /\bnpm ci\b[^&]*--omit=dev/.test(r)),
    'the final stage installs with npm ci --omit=dev',
  );
  t.notOk(
    runs(final).some((r) => /\bnpm (install|i)\b/.test(r)),
    'never npm install (which may change the lock)',
  );
  const copiesDist = final.body.find(
    (i) => i.op === 'COPY' && i.args.includes(`--from=${build.name}`) && /\bdist\b/.test(i.args),
  );
  t.ok(copiesDist, 'the final stage takes only dist/ from the build');
  t.notOk(
    final.body.some((i) => i.op === 'COPY' && !i.args.includes('--from') && /\bsrc\b|node_modules/.test(i.args)),
    'no sources or host node_modules in the final stage',
  );
  t.notOk(
    dockerfile.some((i) => i.op === 'ADD' && /https?:\/\//.test(i.args)),
    'nothing downloaded with ADD',
  );
});

t.test('a Node.js 24 LTS slim or distroless base', async (t) => {
  t.match(
    final.from,
    /^(?:node:24(?:\.\d+)*-(?:bookworm|trixie|bullseye)?-?slim|gcr\.io\/distroless\/nodejs24-debian\d+(?::\S+)?)(?:@sha256:[0-9a-f]{64})?$/,
    `final base ${final.from}`,
  );
  for (const stage of all) t.notMatch(stage.from, /:latest$|^node$/, `${stage.from}: a pinned major, never latest`);
});

t.test('runs as a non-root numeric user', async (t) => {
  const users = final.body.filter((i) => i.op === 'USER');
  t.equal(users.length > 0, true, 'the final stage sets USER');
  const user = users.at(-1)!.args;
  t.match(user, /^\d+(?::\d+)?$/, 'numeric uid[:gid], so runAsNonRoot can verify it');
  t.not(Number(user.split(':')[0]), 0, 'not root');
  const afterUser = final.body.slice(final.body.indexOf(users.at(-1)!) + 1);
  t.notOk(
    afterUser.some((i) => i.op === 'USER'),
    'nothing switches back',
  );
});

t.test('exec-form entrypoint: tini as PID 1 forwards every signal to node; a SIGTERM exit is 0', async (t) => {
  const entrypoint = final.body.filter((i) => i.op === 'ENTRYPOINT').at(-1);
  t.ok(entrypoint, 'an ENTRYPOINT');
  // PID 1 ignores a signal it has no handler for: node as PID 1 lost a SIGTERM sent while it started.
  t.same(
    JSON.parse(entrypoint!.args),
    ['/usr/bin/tini', '-e', '143', '--', 'node', 'dist/cli.js'],
    'exec form (JSON array), no shell; exit 143 (killed by SIGTERM before a handler existed) reported as 0',
  );
  t.ok(
    runs(build).some((r) => /apt-get install -y --no-install-recommends tini\b/.test(r)),
    "tini from Debian's packages, installed in the build stage (apt's lists stay out of the image)",
  );
  t.ok(
    final.body.some((i) => i.op === 'COPY' && i.args === `--from=${build.name} /usr/bin/tini-static /usr/bin/tini`),
    'the final stage takes the static tini alone',
  );
  t.notOk(
    runs(final).some((r) => /apt-get/.test(r)),
    'no apt in the final stage',
  );
  const cmd = final.body.filter((i) => i.op === 'CMD').at(-1);
  if (cmd) t.ok(cmd.args.startsWith('['), 'a CMD, if any, is exec form too');
  else t.pass('no CMD: arguments come from `docker run` or the pod spec');
  const stop = final.body.find((i) => i.op === 'STOPSIGNAL');
  t.ok(stop === undefined || stop.args === 'SIGTERM', 'the stop signal is SIGTERM');
});

t.test('both ports exposed', async (t) => {
  const ports = final.body
    .filter((i) => i.op === 'EXPOSE')
    .flatMap((i) => i.args.split(' '))
    .map((p) => p.replace(/\/tcp$/, ''));
  t.same(ports.sort(), ['7080', '7081']);
});

/** Go filepath.Match plus `**`, as Docker reads .dockerignore; the last matching rule wins. */
function ignored(rules: string[], file: string): boolean {
  let out = false;
  for (const rule of rules) {
    const negate = rule.startsWith('!');
    const pattern = (negate ? rule.slice(1) : rule).replace(/^\/+|\/+$/g, '');
    const re = new RegExp(
      `^${pattern
        .split('/')
        .map((part) =>
          part === '**'
            ? '.*'
            : part
                .replace(/[.+^${}()|[\]\\]/g, '\\$&')
                .replace(/\*/g, '[^/]*')
                .replace(/\?/g, '[^/]'),
        )
        .join('/')}(?:/.*)?$`,
    );
    if (re.test(file)) out = !negate;
  }
  return out;
}

t.test('.dockerignore: the context holds what the Dockerfile copies, and nothing private', async (t) => {
  const rules = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const copied = dockerfile
    .filter((i) => i.op === 'COPY' && !i.args.includes('--from'))
    .flatMap((i) => i.args.split(' ').slice(0, -1))
    .filter((s) => !s.startsWith('--'));
  t.ok(copied.length > 0);
  for (const source of copied) t.notOk(ignored(rules, source), `${source} reaches the build`);
  t.notOk(ignored(rules, 'src/app.ts'), 'sources reach the build');
  for (const kept of [
    'node_modules/undici/index.js',
    '.git/config',
    'dist/cli.js',
    'test/e2e/shutdown.test.ts',
    '.env',
    'helm/tollgate/values.yaml',
    'coverage/x',
    '.tap/x',
  ]) {
    t.ok(ignored(rules, kept), `${kept} stays out of the context`);
  }
});

t.test('nothing that makes a build contact Docker Hub for nothing, nothing left in /tmp', async (t) => {
  const text = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
  t.notMatch(text, /^#\s*syntax=/m, 'no `# syntax=` line: BuildKit would fetch that frontend on every build');
  t.ok(
    runs(final).some((r) => /\bnpm ci\b/.test(r) && /rm -rf [^&]*\/tmp\/node-compile-cache/.test(r)),
    "the install's compile cache is removed in the layer that made it",
  );
});
