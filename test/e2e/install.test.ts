import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

const ROOT = path.join(__dirname, '..', '..');

/** The commands the workspace installs, and the package that carries each. */
const COMMANDS = [
  { name: 'chit', workspace: 'cli', help: /Usage: chit \[options\] \[command\]/, built: 'dist/main.js' },
  { name: 'chit-hub', workspace: 'hub', help: /Usage: chit-hub \[options\] \[command\]/, built: 'dist/main.js' },
] as const;

// npm's own settings of an enclosing `npm test` (workspace, prefix…) must not steer the npm run here.
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_/i.test(key)));

const readJson = (file: string) => JSON.parse(readFileSync(file, 'utf8'));
const run = (command: string, args: string[], cwd: string) =>
  spawnSync(command, args, { cwd, env, encoding: 'utf8', timeout: 120_000 });

// Issue 11: after `npm ci` at the root, `npx chit` and `npx chit-hub` are the workspace's commands, built
// or not. npm links a package's bin into node_modules/.bin only if its file exists at install time (and
// `npm ci` takes the bin from package-lock.json), so each bin is a committed script that runs the built
// command, or says how to build it.
describe('install: the workspace exposes chit and chit-hub', function () {
  this.timeout(240_000);

  let scratch: string;

  before(() => {
    scratch = mkdtempSync(path.join(tmpdir(), 'chit-install-'));
  });

  after(() => {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  });

  for (const command of COMMANDS) {
    it(`${command.name}: the bin is an executable file of the checkout, and package-lock.json agrees`, () => {
      const manifest = readJson(path.join(ROOT, command.workspace, 'package.json'));
      const bin = manifest.bin?.[command.name] as string | undefined;
      assert.ok(bin, `${command.workspace}/package.json has no bin "${command.name}"`);
      const file = path.join(command.workspace, bin);
      // Not a build output (dist/ is ignored, so a fresh clone lacks it): a file of the checkout.
      const ignored = spawnSync('git', ['check-ignore', '-q', '--', file], { cwd: ROOT }).status === 0;
      assert.ok(!ignored, `${file} is ignored by git: a fresh clone has no such file before a build`);
      assert.ok(statSync(path.join(ROOT, file)).mode & 0o111, `${file} is not executable`);
      assert.match(readFileSync(path.join(ROOT, file), 'utf8'), /^#!\/usr\/bin\/env node\n/);
      if (manifest.files) assert.ok(manifest.files.includes(path.normalize(bin).split(path.sep)[0]), 'bin not packed');
      const locked = readJson(path.join(ROOT, 'package-lock.json')).packages[command.workspace].bin;
      assert.deepEqual(locked, { [command.name]: path.normalize(bin) });
    });
  }

  it('npm install links both, and npx runs them: a clear message before the build, the command after it', () => {
    // A copy of the workspace's manifests and bins, without dependencies (nothing to download) or builds.
    const workspace = path.join(scratch, 'workspace');
    mkdirSync(workspace);
    const root = readJson(path.join(ROOT, 'package.json'));
    writeFileSync(
      path.join(workspace, 'package.json'),
      JSON.stringify({ name: root.name, private: true, workspaces: root.workspaces }),
    );
    for (const { workspace: name } of COMMANDS) {
      const manifest = readJson(path.join(ROOT, name, 'package.json'));
      mkdirSync(path.join(workspace, name));
      writeFileSync(
        path.join(workspace, name, 'package.json'),
        JSON.stringify({ name: manifest.name, version: manifest.version, type: manifest.type, bin: manifest.bin }),
      );
      cpSync(path.join(ROOT, name, 'bin'), path.join(workspace, name, 'bin'), { recursive: true });
    }
    const install = run('npm', ['install', '--offline', '--ignore-scripts', '--no-audit', '--no-fund'], workspace);
    assert.equal(install.status, 0, install.stderr);

    for (const command of COMMANDS) {
      const unbuilt = run('npx', ['--no', '--', command.name, '--help'], workspace);
      assert.equal(unbuilt.status, 1, `${command.name}: ${unbuilt.stdout}${unbuilt.stderr}`);
      assert.match(unbuilt.stderr, new RegExp(`${command.name} is not built yet: .*${command.built} is missing`));
      assert.match(unbuilt.stderr, /npm run build -w sdk/);
      assert.match(unbuilt.stderr, new RegExp(`npm run build -w ${command.workspace}\\b`));
      assert.match(unbuilt.stderr, /npm start/);
    }

    // Built: the copy's dist is the repository's (built by `npm run test:e2e`).
    for (const command of COMMANDS) {
      symlinkSync(path.join(ROOT, command.workspace, 'dist'), path.join(workspace, command.workspace, 'dist'));
      const built = run('npx', ['--no', '--', command.name, '--help'], workspace);
      assert.equal(built.status, 0, `${command.name}: ${built.stdout}${built.stderr}`);
      assert.match(built.stdout, command.help);
    }
  });
});
