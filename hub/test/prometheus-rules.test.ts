import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { hubErrorCodes } from '@chit/sdk';
import { parse } from 'yaml';
import type { ChainService } from '../src/chain/chain.service';
import type { ExchangeService } from '../src/exchange/exchange.service';
import { QueueName } from '../src/jobs/job.enums';
import type { MetricsRepository } from '../src/metrics/metrics.repository';
import { MetricsService } from '../src/metrics/metrics.service';
import type { SettlementKind } from '../src/settlement/settlement.types';

// deploy/prometheus (alert rules and their promtool unit tests) and deploy/grafana (the dashboard):
// promtool passes them, and every metric, label and label value their expressions use is one the hub
// serves at GET /metrics. What it serves is read from a MetricsService on stubs, whose exposition
// has a sample of every series the hub can serve (the controller sends that text as it is).

const ROOT = path.join(__dirname, '..', '..');
const RULES = path.join(ROOT, 'deploy', 'prometheus', 'chit.rules.yml');
const RULES_TEST = path.join(ROOT, 'deploy', 'prometheus', 'chit.rules.test.yml');
const DASHBOARD = path.join(ROOT, 'deploy', 'grafana', 'chit-dashboard.json');

/** Labels Prometheus adds to every series it scrapes. */
const TARGET_LABELS = new Set(['job', 'instance']);
/** Every settlement kind (a Record, so that the typecheck fails when a kind is added and not here). */
const KINDS: Record<SettlementKind, true> = { consumer: true, provider: true, identity: true, beneficiary: true };
/** What the dashboard's variables stand for when its expressions are checked. */
const DASHBOARD_VARIABLES: Record<string, string> = {
  __rate_interval: '5m',
  __interval: '1m',
  __range: '1h',
  job: '.*',
  instance: '.*',
  decimals: '18',
};

function promtool(...args: string[]): { status: number | null; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8' });
  assert.ifError(
    result.error &&
      new Error(`promtool is required for this test (Debian: apt-get install prometheus): ${result.error.message}`),
  );
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

/** Series name → label → the values the hub serves it with. */
type Exported = Map<string, Map<string, Set<string>>>;

/** Every series the hub can serve: a MetricsService on stubs, with every error code, kind and queue seen once. */
async function exportedSeries(): Promise<Exported> {
  const info = { stake: 1000n, freeFunds: 10n };
  const metrics = new MetricsService({
    repository: {
      settlementsByStatus: async () => new Map(),
      unsettledLiabilities: async () => 7n,
    } as unknown as MetricsRepository,
    chain: {
      lastHubInfo: info,
      hubInfo: async () => info,
      client: { getBalance: async () => 10n ** 18n },
      unreachable: () => {},
      rpcUrl: 'http://127.0.0.1:8545',
    } as unknown as ChainService,
    exchanges: () => ({ queueDepth: 0, batchCounts: { memory: 0, locked: 0 } }) as unknown as ExchangeService,
    followerLag: async () => 2n,
    relayer: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8',
    jobCounts: async (states) =>
      new Map(Object.values(QueueName).map((queue) => [queue, Object.fromEntries(states.map((s) => [s, 0]))])),
  });
  metrics.exchanged('ok', 0.01);
  for (const code of Object.keys(hubErrorCodes)) metrics.errored(code);
  for (const kind of Object.keys(KINDS) as SettlementKind[]) metrics.settled(kind, 1);

  const exported: Exported = new Map();
  for (const line of (await metrics.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? /.exec(line);
    assert.ok(match, `an exposition line not understood: ${line}`);
    const labels = exported.get(match[1]!) ?? new Map<string, Set<string>>();
    exported.set(match[1]!, labels);
    for (const [, label, value] of (match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      const values = labels.get(label!) ?? new Set<string>();
      labels.set(label!, values);
      values.add(value!);
    }
  }
  return exported;
}

interface Selector {
  name: string | undefined;
  matchers: { label: string; op: string; value: string }[];
}

const KEYWORDS = new Set(['and', 'or', 'unless', 'atan2', 'bool', 'offset', 'inf', 'nan']);
const LABEL_LISTS = new Set(['by', 'without', 'on', 'ignoring', 'group_left', 'group_right']);
/** Aggregation operators, which may be followed by `by (…)` or `without (…)` before their `(`. */
const AGGREGATIONS = new Set(
  'sum min max avg group stddev stdvar count count_values bottomk topk quantile limitk limit_ratio'.split(' '),
);

/**
 * The series selectors of a PromQL expression and the labels of its `by`, `without`, `on`,
 * `ignoring` and `group_*` clauses: a tokenizer, enough for that (promtool checks the syntax).
 */
function readExpression(expr: string): { selectors: Selector[]; grouping: string[] } {
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  let i = 0;
  const space = () => {
    while (i < expr.length && /\s/.test(expr[i]!)) i++;
  };
  const string = (): string => {
    const quote = expr[i]!;
    let value = '';
    for (i++; i < expr.length && expr[i] !== quote; i++) value += expr[i] === '\\' ? expr[++i] : expr[i];
    i++;
    return value;
  };
  const word = (): string => {
    const match = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(expr.slice(i));
    assert.ok(match, `expected a name at ${i} of: ${expr}`);
    i += match[0].length;
    return match[0];
  };
  const matchers = (selector: Selector) => {
    i++; // {
    for (space(); expr[i] !== '}'; space()) {
      const label = word();
      space();
      const op = /^(=~|!~|!=|=)/.exec(expr.slice(i))![0];
      i += op.length;
      space();
      selector.matchers.push({ label, op, value: string() });
      space();
      if (expr[i] === ',') i++;
    }
    i++; // }
  };
  while (i < expr.length) {
    const c = expr[i]!;
    if (/\s/.test(c)) i++;
    else if (c === '"' || c === "'" || c === '`') string();
    else if (c === '[') i = expr.indexOf(']', i) + 1;
    else if (/[0-9.]/.test(c)) i += /^(\d*\.?\d+|\d+\.)([eE][+-]?\d+)?/.exec(expr.slice(i))?.[0].length || 1;
    else if (c === '{') {
      const selector: Selector = { name: undefined, matchers: [] };
      matchers(selector);
      selector.name = selector.matchers.find((m) => m.label === '__name__' && m.op === '=')?.value;
      selectors.push(selector);
    } else if (/[a-zA-Z_:]/.test(c)) {
      const name = word();
      space();
      const lower = name.toLowerCase();
      if (LABEL_LISTS.has(lower)) {
        if (expr[i] !== '(') continue; // group_left without labels
        const end = expr.indexOf(')', i);
        grouping.push(
          ...expr
            .slice(i + 1, end)
            .split(',')
            .map((l) => l.trim())
            .filter(Boolean),
        );
        i = end + 1;
      } else if (KEYWORDS.has(lower) || AGGREGATIONS.has(lower) || expr[i] === '(') {
        // a binary operator, a keyword or a function or aggregation: not a series
      } else {
        const selector: Selector = { name, matchers: [] };
        if (expr[i] === '{') matchers(selector);
        selectors.push(selector);
      }
    } else i++;
  }
  return { selectors, grouping };
}

/** Where `expr` uses a metric, label or label value the hub does not serve. */
function unknownNames(expr: string, exported: Exported): string[] {
  const { selectors, grouping } = readExpression(expr);
  const problems: string[] = [];
  if (selectors.length === 0) problems.push('selects no series');
  const labels = new Set(TARGET_LABELS);
  for (const { name, matchers } of selectors) {
    const served = name === undefined ? undefined : exported.get(name);
    if (!served) {
      problems.push(`metric ${name ?? '(no name)'} is not one the hub serves`);
      continue;
    }
    for (const label of served.keys()) labels.add(label);
    for (const { label, op, value } of matchers) {
      if (TARGET_LABELS.has(label)) continue;
      const values = served.get(label);
      if (!values) {
        problems.push(`${name} has no label ${label}`);
        continue;
      }
      // A value the hub never serves: an exact one, or each word of an alternation (a|b) of exact ones.
      const wanted = op === '=' || op === '!=' ? [value] : /^[\w-]+(\|[\w-]+)*$/.test(value) ? value.split('|') : [];
      for (const v of wanted) if (!values.has(v)) problems.push(`${name}{${label}} is never "${v}"`);
    }
  }
  for (const label of grouping) if (!labels.has(label)) problems.push(`no series here has the label ${label}`);
  return problems;
}

/** Every `expr` of the dashboard's panels and targets, with where it is. */
function dashboardExpressions(node: unknown, where = 'dashboard'): { where: string; expr: string }[] {
  if (Array.isArray(node)) return node.flatMap((child, i) => dashboardExpressions(child, `${where}[${i}]`));
  if (typeof node !== 'object' || node === null) return [];
  const object = node as Record<string, unknown>;
  const here = typeof object.title === 'string' ? `${where} "${object.title}"` : where;
  return Object.entries(object).flatMap(([key, value]) =>
    key === 'expr' && typeof value === 'string' ? [{ where: here, expr: value }] : dashboardExpressions(value, here),
  );
}

/** A dashboard expression with its variables replaced by what they stand for. */
function substituted(expr: string): string {
  return expr.replace(/\$\{?(\w+)\}?/g, (_, name: string) => {
    assert.ok(name in DASHBOARD_VARIABLES, `the dashboard uses $${name}, unknown to this test: ${expr}`);
    return DASHBOARD_VARIABLES[name]!;
  });
}

describe('deploy/prometheus and deploy/grafana', () => {
  let exported: Exported;
  // biome-ignore lint/suspicious/noExplicitAny: parsed YAML
  const rules: any = parse(readFileSync(RULES, 'utf8'));
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON
  const dashboard: any = JSON.parse(readFileSync(DASHBOARD, 'utf8'));
  // biome-ignore lint/suspicious/noExplicitAny: parsed YAML
  const ruleList: any[] = rules.groups.flatMap((group: any) => group.rules);

  before(async () => {
    exported = await exportedSeries();
  });

  it('has alert rules promtool check rules passes without a word', () => {
    const { status, output } = promtool('check', 'rules', RULES);
    assert.equal(status, 0, output);
    assert.doesNotMatch(output, /warn|error/i);
  });

  it('has alert rules that pass their promtool unit tests, which cover every alert', () => {
    const { status, output } = promtool('test', 'rules', RULES_TEST);
    assert.equal(status, 0, output);
    // biome-ignore lint/suspicious/noExplicitAny: parsed YAML
    const tests: any[] = parse(readFileSync(RULES_TEST, 'utf8')).tests;
    for (const rule of ruleList.filter((r) => r.alert)) {
      const cases = tests.flatMap((t) => t.alert_rule_test ?? []).filter((c) => c.alertname === rule.alert);
      assert.ok(
        cases.some((c) => c.exp_alerts?.length > 0),
        `no test of ${rule.alert} expects it to fire`,
      );
      assert.ok(
        cases.some((c) => (c.exp_alerts ?? []).length === 0),
        `no test of ${rule.alert} expects it not to fire`,
      );
    }
  });

  it('has alerts that wait, say how bad and tell the operator what to do', () => {
    const alerts = ruleList.filter((r) => r.alert);
    assert.ok(alerts.length >= 10, `${alerts.length} alerts`);
    for (const rule of alerts) {
      assert.match(rule.for ?? '', /^\d+[smhd]$/, `${rule.alert}: for`);
      assert.ok(['warning', 'critical'].includes(rule.labels?.severity), `${rule.alert}: severity`);
      assert.ok(rule.annotations?.summary && rule.annotations?.description, `${rule.alert}: annotations`);
    }
  });

  it('uses in its rules only metrics, labels and label values the hub serves', () => {
    for (const rule of ruleList) {
      assert.deepEqual(unknownNames(rule.expr, exported), [], `${rule.alert ?? rule.record}: ${rule.expr}`);
    }
  });

  it('uses in its dashboard only metrics, labels and label values the hub serves', () => {
    const expressions = dashboardExpressions(dashboard.panels);
    assert.ok(expressions.length >= 15, `${expressions.length} expressions`);
    for (const { where, expr } of expressions) {
      assert.deepEqual(unknownNames(substituted(expr), exported), [], `${where}: ${expr}`);
    }
    for (const variable of dashboard.templating.list.filter((v: { type: string }) => v.type === 'query')) {
      const query: string = typeof variable.query === 'string' ? variable.query : variable.query.query;
      const match = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
      assert.ok(match, `variable ${variable.name}: ${query}`);
      const [selector, label] = [substituted(match[1]!), match[2]!];
      assert.deepEqual(unknownNames(`${selector} == ${selector}`, exported), [], `variable ${variable.name}: ${query}`);
      const { selectors } = readExpression(selector);
      const labels = exported.get(selectors[0]!.name!)!;
      assert.ok(TARGET_LABELS.has(label) || labels.has(label), `variable ${variable.name}: no label ${label}`);
    }
  });

  it('has a dashboard whose expressions are PromQL, on a Prometheus datasource chosen at import', () => {
    const directory = mkdtempSync(path.join(tmpdir(), 'chit-dashboard-'));
    try {
      const file = path.join(directory, 'dashboard.rules.yml');
      const rules = dashboardExpressions(dashboard.panels).map(({ expr }, i) => ({
        record: `chit_dashboard_panel_${i}`,
        expr: substituted(expr),
      }));
      writeFileSync(file, JSON.stringify({ groups: [{ name: 'dashboard', rules }] }));
      const { status, output } = promtool('check', 'rules', file);
      assert.equal(status, 0, output);
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
    assert.ok(dashboard.schemaVersion >= 36, `schemaVersion ${dashboard.schemaVersion}`);
    assert.deepEqual(
      dashboard.__inputs.map((input: { name: string; pluginId: string }) => [input.name, input.pluginId]),
      [['DS_PROMETHEUS', 'prometheus']],
    );
    const variable = dashboard.templating.list.find((v: { type: string }) => v.type === 'datasource');
    assert.equal(variable.query, 'prometheus');
    assert.equal(variable.current.value, `\${DS_PROMETHEUS}`);
    const panels = dashboard.panels.filter((p: { type: string }) => p.type !== 'row');
    for (const panel of panels) {
      for (const target of [panel, ...panel.targets]) {
        assert.deepEqual(target.datasource, { type: 'prometheus', uid: `\${${variable.name}}` }, panel.title);
      }
    }
    const ids = dashboard.panels.map((p: { id: number }) => p.id);
    assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  });
});
