import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { parseDocument } from 'yaml';

// No Docker engine runs where Chit is developed, so docker-compose.yml and the Dockerfile are checked
// here without one: the compose file against the Compose Specification's JSON schema (compose-spec.json,
// as the dclint package ships it) and both against the rules of issue 11: exact image versions, no key
// in either file, the chain and the books kept or deleted together, non-root images on a maintained
// Node LTS. What only an engine shows (that the images build and the stack comes up) is not checked.

const ROOT = path.join(__dirname, '..', '..');
const read = (file: string) => readFileSync(path.join(ROOT, file), 'utf8');

/** A private key as the hub and Hardhat take it: 0x and 64 hex digits. */
const PRIVATE_KEY = /0x[0-9a-fA-F]{64}(?![0-9a-fA-F])/;

/** Node release lines with long-term support, and the end of their maintenance (nodejs.org release schedule). */
const NODE_LTS_END: Record<number, string> = {
  20: '2026-04-30',
  22: '2027-04-30',
  24: '2028-04-30',
  26: '2029-04-30',
};

interface Service {
  image?: string;
  build?: string | { context?: string; target?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  env_file?: string | (string | { path: string })[];
  depends_on?: string[] | Record<string, { condition: string }>;
  healthcheck?: { test?: unknown; disable?: boolean };
  volumes?: (string | { type?: string; source?: string; target: string })[];
  secrets?: (string | { source: string; target?: string })[];
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, { external?: boolean } | null>;
  secrets?: Record<string, { file?: string; environment?: string }>;
}

/** The file as `docker compose` reads it: YAML 1.2 with merge keys (`<<`), duplicate keys refused. */
function parseCompose(source: string): Compose {
  const document = parseDocument(source, { merge: true, uniqueKeys: true });
  assert.deepEqual([...document.errors, ...document.warnings].map(String), [], 'docker-compose.yml is not clean YAML');
  return document.toJS() as Compose;
}

interface Instruction {
  keyword: string;
  args: string;
  line: number;
}

interface Stage {
  base: string;
  name?: string;
  instructions: Instruction[];
}

/** The Dockerfile's instructions by stage: continuation lines joined, comments and blank lines dropped. */
function parseDockerfile(source: string): Stage[] {
  const instructions: Instruction[] = [];
  let pending: Instruction | undefined;
  source.split('\n').forEach((text, index) => {
    const trimmed = text.trim();
    if (trimmed.startsWith('#') || (trimmed === '' && pending === undefined)) return;
    const continued = trimmed.endsWith('\\');
    const body = continued ? trimmed.slice(0, -1).trim() : trimmed;
    if (pending) pending.args = `${pending.args} ${body}`.trim();
    else {
      const [keyword = '', ...rest] = body.split(/\s+/);
      pending = { keyword: keyword.toUpperCase(), args: rest.join(' '), line: index + 1 };
    }
    if (!continued) {
      instructions.push(pending);
      pending = undefined;
    }
  });
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === 'FROM') {
      const [base = '', as, name] = instruction.args.split(/\s+/).filter((word) => !word.startsWith('--'));
      stages.push({ base, name: as?.toUpperCase() === 'AS' ? name : undefined, instructions: [] });
    } else {
      assert.ok(stages.length > 0, `Dockerfile line ${instruction.line}: ${instruction.keyword} before FROM`);
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** Flags (`--from=build`) and words of a COPY, in shell or JSON form. */
function copyArgs(args: string): { flags: Record<string, string>; paths: string[] } {
  const words = args.split(/\s+/);
  const flags = Object.fromEntries(
    words.filter((word) => word.startsWith('--')).map((word) => word.slice(2).split('=') as [string, string]),
  );
  const rest = words.filter((word) => !word.startsWith('--')).join(' ');
  const paths = rest.startsWith('[') ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return { flags, paths };
}

/** Whether .dockerignore keeps `file` (a path from the root) out of the build context. */
function dockerignored(patterns: string[], file: string): boolean {
  let ignored = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const pattern = (negated ? raw.slice(1) : raw).replace(/^\.?\//, '').replace(/\/$/, '');
    const source = pattern
      .split(/(\*\*\/|\*\*|\*|\?)/)
      .map((part) =>
        part === '**/'
          ? '(?:.*/)?'
          : part === '**'
            ? '.*'
            : part === '*'
              ? '[^/]*'
              : part === '?'
                ? '[^/]'
                : part.replace(/[.+^${}()|[\]\\]/g, '\\$&'),
      )
      .join('');
    // A pattern that matches a folder matches everything in it.
    if (new RegExp(`^${source}(?:/.*)?$`).test(file)) ignored = !negated;
  }
  return ignored;
}

const list = (value: string | string[] | undefined) =>
  value === undefined ? [] : Array.isArray(value) ? value : value.split(/\s+/);
const environment = (service: Service): Record<string, string> =>
  Array.isArray(service.environment)
    ? Object.fromEntries(service.environment.map((entry) => entry.split(/=(.*)/s).slice(0, 2) as [string, string]))
    : Object.fromEntries(Object.entries(service.environment ?? {}).map(([key, value]) => [key, String(value ?? '')]));
const envFiles = (service: Service) =>
  (Array.isArray(service.env_file) ? service.env_file : service.env_file ? [service.env_file] : []).map((entry) =>
    typeof entry === 'string' ? entry : entry.path,
  );
const mounts = (service: Service) =>
  (service.volumes ?? []).map((volume) => {
    if (typeof volume !== 'string') return { source: volume.source ?? '', target: volume.target };
    const [source = '', target = ''] = volume.split(':');
    return { source, target };
  });
const buildTarget = (service: Service) => (typeof service.build === 'object' ? service.build.target : undefined);

describe('docker-compose.yml and the Dockerfile, checked without a Docker engine', () => {
  // Read in a hook, so that a broken file fails these tests and not the loading of the whole suite.
  let composeSource: string;
  let dockerfileSource: string;
  let compose: Compose;
  let services: [string, Service][];
  let stages: Stage[];
  let external: Stage[];
  let ignore: string[];
  before(() => {
    composeSource = read('docker-compose.yml');
    dockerfileSource = read('Dockerfile');
    compose = parseCompose(composeSource);
    services = Object.entries(compose.services);
    stages = parseDockerfile(dockerfileSource);
    external = stages.filter((stage) => !stages.some((other) => other.name === stage.base));
    ignore = read('.dockerignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
  });

  /** The stage `name` (or the last), with the instructions of the stages it is built FROM before its own. */
  const stageChain = (name?: string): Instruction[] => {
    const stage = name === undefined ? stages.at(-1) : stages.find((candidate) => candidate.name === name);
    assert.ok(stage, `the Dockerfile has no stage ${name}`);
    return stages.some((parent) => parent.name === stage.base)
      ? [...stageChain(stage.base), ...stage.instructions]
      : stage.instructions;
  };

  describe('docker-compose.yml', () => {
    it('is valid against the Compose Specification', () => {
      const dclint = path.dirname(require.resolve('dclint/package.json'));
      const schema = JSON.parse(readFileSync(path.join(dclint, 'schemas', 'compose.schema.json'), 'utf8'));
      assert.equal(schema.title, 'Compose Specification');
      // It names draft-07 by an https address, which Ajv (draft-07 by default) does not know by that name.
      assert.equal(schema.$schema, 'https://json-schema.org/draft-07/schema');
      delete schema.$schema;
      // The JSON Schema validator dclint itself validates with.
      const { Ajv } = createRequire(require.resolve('dclint'))('ajv') as {
        Ajv: new (
          options: object,
        ) => {
          compile(schema: object): ((data: unknown) => boolean) & {
            errors?: { instancePath: string; message?: string }[] | null;
          };
        };
      };
      const validate = new Ajv({ allErrors: true, strict: false, allowUnionTypes: true, logger: false }).compile(
        schema,
      );
      const valid = validate(compose);
      assert.deepEqual(
        (validate.errors ?? []).map((error) => `${error.instancePath || '/'} ${error.message}`),
        [],
        'docker-compose.yml does not follow the Compose Specification',
      );
      assert.ok(valid);
    });

    it('pins every image to an exact version', () => {
      for (const [name, service] of services) {
        if (service.image === undefined) {
          assert.ok(service.build, `service ${name} has neither an image nor a build`);
          continue;
        }
        const match = /^(?<repository>[^:@]+(?::\d+\/[^:@]+)?)(?::(?<tag>[^@]+))?(?:@sha256:[0-9a-f]{64})?$/.exec(
          service.image,
        );
        const { repository = '', tag = '' } = match?.groups ?? {};
        if (service.image.includes('@sha256:')) continue;
        // Postgres versions have two numbers (15.19); the others three (7.4.11, v1.7.1).
        const numbers = repository === 'postgres' ? 2 : 3;
        assert.match(
          tag,
          new RegExp(`^v?\\d+(\\.\\d+){${numbers - 1}}(-[a-z0-9.]+)?$`),
          `service ${name}: image ${service.image} is not pinned to an exact version (${numbers} numbers)`,
        );
      }
    });

    it('runs anvil from the Foundry release of the @foundry-rs/anvil package that npm start runs', () => {
      const lock = JSON.parse(read('package-lock.json'));
      const version = lock.packages['node_modules/@foundry-rs/anvil']?.version;
      assert.ok(version, 'package-lock.json has no @foundry-rs/anvil');
      assert.equal(compose.services.anvil?.image, `ghcr.io/foundry-rs/foundry:v${version}`);
    });

    it('depends only on services of this file, waiting for health only where there is a health check', () => {
      const edges = new Map<string, string[]>();
      for (const [name, service] of services) {
        const dependsOn = service.depends_on ?? [];
        const conditions = Array.isArray(dependsOn)
          ? dependsOn.map((dependency) => [dependency, 'service_started'] as const)
          : Object.entries(dependsOn).map(([dependency, { condition }]) => [dependency, condition] as const);
        edges.set(
          name,
          conditions.map(([dependency]) => dependency),
        );
        for (const [dependency, condition] of conditions) {
          const target = compose.services[dependency];
          assert.ok(target, `service ${name} depends on ${dependency}, which is not a service of this file`);
          if (condition !== 'service_healthy') continue;
          const healthcheck =
            (target.healthcheck?.test !== undefined && !target.healthcheck.disable) ||
            (target.build !== undefined && stageChain(buildTarget(target)).some((i) => i.keyword === 'HEALTHCHECK'));
          assert.ok(healthcheck, `service ${name} waits for ${dependency} to be healthy, which has no health check`);
        }
      }
      const visit = (name: string, path: string[]) => {
        assert.ok(!path.includes(name), `depends_on cycle: ${[...path, name].join(' -> ')}`);
        for (const next of edges.get(name) ?? []) visit(next, [...path, name]);
      };
      for (const name of edges.keys()) visit(name, []);
    });

    it('holds no private key, nor do the settings files it reads', () => {
      const files = [...new Set(services.flatMap(([, service]) => envFiles(service)))];
      assert.ok(files.length > 0, 'the hub services read their settings from an env file');
      for (const [file, text] of [
        ['docker-compose.yml', composeSource],
        ['Dockerfile', dockerfileSource],
        ...files.map((file) => [file, read(file)]),
      ] as const) {
        assert.doesNotMatch(text, PRIVATE_KEY, `${file} holds a private key: pass it as a secret`);
        assert.doesNotMatch(
          text,
          /^\s*(OPERATOR_KEY|RELAYER_KEY|DEPLOYER_KEY)\s*[:=]/m,
          `${file} sets a key variable: use its _FILE variable and a secret`,
        );
      }
    });

    it('passes the keys as secrets from files that exist, and keeps those files out of images', () => {
      const secrets = compose.secrets ?? {};
      assert.ok(Object.keys(secrets).length > 0, 'no secrets declared');
      for (const [name, secret] of Object.entries(secrets)) {
        assert.ok(secret.file, `secret ${name} is not read from a file`);
        assert.ok(existsSync(path.join(ROOT, secret.file)), `secret ${name}: ${secret.file} does not exist`);
        assert.ok(dockerignored(ignore, secret.file), `secret ${name}: .dockerignore lets ${secret.file} into images`);
      }
      for (const [name, service] of services) {
        const granted = (service.secrets ?? []).map((secret) => (typeof secret === 'string' ? secret : secret.source));
        for (const secret of granted) assert.ok(secrets[secret], `service ${name} uses undeclared secret ${secret}`);
        for (const [variable, value] of Object.entries(environment(service))) {
          if (!variable.endsWith('_KEY_FILE')) continue;
          const secret = /^\/run\/secrets\/(.+)$/.exec(value)?.[1];
          assert.ok(secret && granted.includes(secret), `service ${name}: ${variable} is not one of its secrets`);
        }
        for (const file of envFiles(service)) {
          assert.ok(existsSync(path.join(ROOT, file)), `service ${name}: env file ${file} does not exist`);
          assert.ok(dockerignored(ignore, file), `service ${name}: .dockerignore lets ${file} into images`);
        }
      }
      // The hubs and the deploy job each get the operator key (the deployer registers the hub as its operator).
      for (const [name, variable] of [
        ['hub-1', 'OPERATOR_KEY_FILE'],
        ['hub-2', 'OPERATOR_KEY_FILE'],
        ['settlement-worker', 'OPERATOR_KEY_FILE'],
        ['deploy', 'DEPLOYER_KEY_FILE'],
      ] as const) {
        const service = compose.services[name];
        assert.ok(service, `no service ${name}`);
        assert.equal(environment(service)[variable], '/run/secrets/operator_key', `service ${name}: ${variable}`);
      }
    });

    it('keeps the chain and the books in volumes that go together (down -v deletes them all)', () => {
      const declared = compose.volumes ?? {};
      const used = new Set<string>();
      for (const [name, service] of services) {
        for (const { source } of mounts(service)) {
          if (source === '' || /^[./~]/.test(source)) continue;
          assert.ok(source in declared, `service ${name} mounts volume ${source}, which is not declared`);
          used.add(source);
        }
      }
      for (const [name, volume] of Object.entries(declared)) {
        assert.ok(used.has(name), `volume ${name} is declared and not used`);
        assert.ok(!volume?.external, `volume ${name} is external: docker compose down -v would leave it`);
      }
      const mountOf = (service: string, target: (path: string) => boolean) =>
        mounts(compose.services[service] ?? {}).find((mount) => target(mount.target) && mount.source in declared);

      assert.ok(
        mountOf('postgres', (target) => target === '/var/lib/postgresql/data'),
        'the books (Postgres) are not on a volume',
      );
      const anvil = compose.services.anvil ?? {};
      const words = [...list(anvil.entrypoint), ...list(anvil.command)];
      const flag = words.findIndex((word) => word === '--state' || word.startsWith('--state='));
      assert.ok(flag >= 0, 'anvil keeps no state (--state)');
      const stateFile = words[flag]?.includes('=') ? words[flag].split('=')[1] : words[flag + 1];
      assert.ok(
        stateFile && mountOf('anvil', (target) => stateFile.startsWith(`${target.replace(/\/$/, '')}/`)),
        `anvil's state file ${stateFile} is not on a volume`,
      );
      assert.ok(
        words.some((word) => /^--state-interval(=|$)/.test(word)),
        'anvil writes its state only when it stops cleanly (--state-interval)',
      );
      assert.ok(
        mountOf('deploy', (target) => target === '/app/deployments'),
        "the deploy job's record of the chain it deployed to is not on a volume",
      );
      // Redis holds queue state only, rebuilt from the books: it keeps nothing, so it is never older than them.
      const redis = compose.services.redis ?? {};
      assert.deepEqual(mounts(redis), [], 'redis mounts a volume');
      assert.match(list(redis.command).join(' '), /--save\s+(""|'')?\s*--appendonly\s+no/, 'redis writes to disk');
    });

    it('builds stages of the Dockerfile, each as a user other than root', () => {
      const built = services.filter(([, service]) => service.build !== undefined);
      assert.ok(built.length > 0);
      for (const [name, service] of built) {
        const context = typeof service.build === 'string' ? service.build : (service.build?.context ?? '.');
        assert.equal(path.resolve(ROOT, context), ROOT, `service ${name} builds another context`);
        const user = stageChain(buildTarget(service))
          .filter((instruction) => instruction.keyword === 'USER')
          .at(-1)?.args;
        assert.ok(user && !/^(root|0)(:|$)/.test(user), `service ${name} runs as root (USER ${user ?? 'unset'})`);
      }
    });
  });

  describe('Dockerfile', () => {
    it('builds in one stage and runs the hub from another with production dependencies only', () => {
      assert.ok(stages.length >= 2, 'the Dockerfile has one stage');
      const runtime = stages.at(-1);
      assert.ok(runtime && external.includes(runtime), 'the last stage (the default image) starts from a build stage');
      const runs = runtime.instructions.filter((instruction) => instruction.keyword === 'RUN').map((i) => i.args);
      assert.ok(
        runs.some((run) => /\bnpm ci\b.*--omit=dev/.test(run)),
        'the last stage does not install with --omit=dev',
      );
      for (const instruction of runtime.instructions.filter((i) => i.keyword === 'COPY')) {
        const { flags, paths } = copyArgs(instruction.args);
        assert.ok(
          flags.from || !paths.slice(0, -1).includes('.'),
          `line ${instruction.line}: copies the whole context`,
        );
      }
      const user = runtime.instructions.filter((instruction) => instruction.keyword === 'USER').at(-1)?.args;
      assert.ok(user && !/^(root|0)(:|$)/.test(user), `the hub image runs as root (USER ${user ?? 'unset'})`);
      assert.match(
        runtime.instructions.find((i) => i.keyword === 'CMD')?.args ?? '',
        /hub\/(bin\/chit-hub|dist\/main)\.js/,
      );
    });

    it('installs from the lockfile with the package.json of the hub and the SDK in every stage that installs', () => {
      for (const stage of external) {
        const install = stage.instructions.findIndex((i) => i.keyword === 'RUN' && /\bnpm ci\b/.test(i.args));
        assert.ok(install >= 0, `stage ${stage.name}: no npm ci`);
        const copied = stage.instructions
          .slice(0, install)
          .filter((i) => i.keyword === 'COPY' && !copyArgs(i.args).flags.from)
          .flatMap((i) => {
            const paths = copyArgs(i.args).paths;
            const target = paths.at(-1) ?? '';
            // `COPY a b ./` and `COPY sdk/package.json sdk/`: the files as they land under WORKDIR.
            return paths
              .slice(0, -1)
              .map((source) =>
                target.endsWith('/') || paths.length > 2 ? path.join(target, path.basename(source)) : target,
              );
          });
        for (const file of ['package.json', 'package-lock.json', 'hub/package.json', 'sdk/package.json']) {
          assert.ok(copied.includes(file), `stage ${stage.name}: ${file} is not there before npm ci`);
        }
      }
    });

    it('starts from one exact Node release of a maintained LTS line', () => {
      const bases = new Set(external.map((stage) => stage.base));
      assert.equal(bases.size, 1, `stages start from different images: ${[...bases].join(', ')}`);
      const [base = ''] = bases;
      const version = /^node:(\d+)\.(\d+)\.(\d+)(-[a-z0-9-]+)?$/.exec(base);
      assert.ok(version, `${base} is not an exact Node release (node:X.Y.Z-variant)`);
      const major = Number(version[1]);
      const end = NODE_LTS_END[major];
      assert.ok(end, `Node ${major} is not an LTS line`);
      assert.ok(new Date(end) > new Date(), `Node ${major} is no longer maintained (since ${end})`);
      const engines = JSON.parse(read('package.json')).engines?.node as string;
      assert.ok(major >= Number(/\d+/.exec(engines)?.[0]), `Node ${major} is below engines.node ${engines}`);
    });

    it('copies only files that exist and that .dockerignore lets in', () => {
      for (const stage of stages) {
        for (const instruction of stage.instructions.filter((i) => i.keyword === 'COPY' || i.keyword === 'ADD')) {
          const { flags, paths } = copyArgs(instruction.args);
          if (flags.from) {
            assert.ok(
              stages.some((other) => other.name === flags.from),
              `line ${instruction.line}: --from=${flags.from} is not a stage`,
            );
            continue;
          }
          for (const source of paths.slice(0, -1)) {
            const file = path.normalize(source).replace(/\/$/, '');
            assert.ok(existsSync(path.join(ROOT, file)), `line ${instruction.line}: ${source} does not exist`);
            if (file !== '.') {
              assert.ok(!dockerignored(ignore, file), `line ${instruction.line}: .dockerignore leaves out ${source}`);
            }
          }
        }
      }
    });
  });
});
