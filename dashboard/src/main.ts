import {
  HubClient,
  HubError,
  type HubProviderSettlement,
  type HubServiceInfo,
  type HubSession,
  type HubSettlementQuote,
} from '@chit/sdk';
import { type Address, getAddress, type Hex, stringToHex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { clearPlots, fitPlots, plot } from './chart';
import * as format from './format';
import { KeyFileError, readKeyFile, unlockKeystore } from './keyfile';
import { parseMetrics, type Scrape, sum } from './metrics';

// The dashboard of issue #16: a provider's earnings, a consumer's spending and the operator's view of
// the hub, read with the SDK's HubClient after a Sign-In with Ethereum. Served by the hub at
// /dashboard; the hub's API is at the same origin, under the path the dashboard is served from.

type Page = 'provider' | 'consumer' | 'operator';
type Bucket = 'hour' | 'day';

const DAY = 86_400_000;
/** Hour buckets over a longer range than this are refused by the hub (744 buckets). */
const MAX_HOUR_DAYS = 31;
/** Below this the relayer cannot pay for many more settlements. */
const LOW_GAS_WEI = 5e16;
/** Liabilities at this share of the stake are a warning. */
const NEAR_STAKE = 0.8;

const base = `${location.origin}${location.pathname.replace(/\/dashboard(\/.*)?$/, '')}`;
const hub = new HubClient({ url: base, retry: { attempts: 2 } });
const params = new URLSearchParams(location.search);
const pollMs = Math.max(1_000, Number(params.get('poll')) || 10_000);

const state: {
  info: HubServiceInfo | undefined;
  session: HubSession | undefined;
  page: Page;
  timer: number | undefined;
  loading: boolean;
  again: boolean;
  previousScrape: { at: number; exchanges: number } | undefined;
} = {
  info: undefined,
  session: undefined,
  page: 'provider',
  timer: undefined,
  loading: false,
  again: false,
  previousScrape: undefined,
};

function $(id: string): HTMLElement {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing`);
  return element;
}
const input = (id: string) => $(id) as HTMLInputElement;

function decimals(): number {
  const value = Number(input('range-decimals').value);
  return Number.isInteger(value) && value >= 0 && value <= 36 ? value : 18;
}

/** Shows an amount in base units with the chosen decimals; the exact base units stay in data-value. */
function showAmount(id: string, value: bigint): void {
  const element = $(id);
  element.textContent = format.amount(value, decimals());
  element.dataset.value = value.toString();
}

function showText(id: string, text: string, value?: string): void {
  const element = $(id);
  element.textContent = text;
  if (value === undefined) delete element.dataset.value;
  else element.dataset.value = value;
}

function status(id: string, text: string, error = false): void {
  const element = $(id);
  element.textContent = text;
  element.classList.toggle('error', error);
}

/** Why a request failed, in a sentence. */
function reason(error: unknown): string {
  if (error instanceof HubError) return `${error.code}: ${error.message}`;
  if (error instanceof Error) return error.message;
  return String(error);
}

// ---------------------------------------------------------------------------------------------------
// Sign-in

interface Signer {
  address: Address;
  signMessage: (args: { message: string }) => Promise<Hex>;
}

interface Eip1193 {
  request(args: { method: string; params?: unknown[] }): Promise<unknown>;
}

async function chainId(): Promise<number> {
  state.info ??= await hub.info();
  return state.info.chainId;
}

async function signIn(signer: Signer, button: HTMLButtonElement): Promise<void> {
  button.disabled = true;
  status('signin-status', 'Signing in…');
  try {
    const session = await hub.history.signIn(signer, { chainId: await chainId() });
    status('signin-status', '');
    enter(session);
  } catch (error) {
    status('signin-status', `Sign-in failed: ${reason(error)}`, true);
  } finally {
    button.disabled = false;
  }
}

async function walletSignIn(): Promise<void> {
  const ethereum = (window as unknown as { ethereum?: Eip1193 }).ethereum;
  const button = $('wallet-sign-in') as HTMLButtonElement;
  if (!ethereum) return;
  try {
    const [account] = (await ethereum.request({ method: 'eth_requestAccounts' })) as string[];
    if (!account) throw new Error('The wallet shared no account');
    const address = getAddress(account);
    await signIn(
      {
        address,
        signMessage: async ({ message }) =>
          (await ethereum.request({ method: 'personal_sign', params: [stringToHex(message), address] })) as Hex,
      },
      button,
    );
  } catch (error) {
    status('signin-status', `Sign-in failed: ${reason(error)}`, true);
  }
}

async function keyFileSignIn(event: SubmitEvent): Promise<void> {
  event.preventDefault();
  const button = $('key-sign-in') as HTMLButtonElement;
  const file = input('key-file').files?.[0];
  if (!file) {
    status('signin-status', 'Choose a key file first', true);
    return;
  }
  try {
    const read = readKeyFile(await file.text());
    let key: Hex;
    if (read.kind === 'plain') {
      key = read.key;
    } else {
      const password = input('key-password').value;
      if (password === '') throw new KeyFileError('This key file is an encrypted keystore: type its password');
      button.disabled = true;
      status('signin-status', 'Opening the keystore (this takes a few seconds)…');
      key = await unlockKeystore(read.keystore, password).finally(() => {
        button.disabled = false;
      });
    }
    input('key-password').value = '';
    await signIn(privateKeyToAccount(key), button);
  } catch (error) {
    status('signin-status', `Sign-in failed: ${reason(error)}`, true);
  }
}

function enter(session: HubSession): void {
  state.session = session;
  $('signin').hidden = true;
  $('app').hidden = false;
  $('who').hidden = false;
  $('who-address').textContent = session.address;
  $('who-operator').hidden = !session.operator;
  (document.querySelector('.tab[data-page="operator"]') as HTMLElement).hidden = !session.operator;
  show(session.operator ? 'operator' : 'provider');
  state.timer = window.setInterval(() => void refresh(), pollMs);
}

function signOut(message = ''): void {
  state.session = undefined;
  window.clearInterval(state.timer);
  state.timer = undefined;
  state.previousScrape = undefined;
  clearPlots();
  $('app').hidden = true;
  $('who').hidden = true;
  $('signin').hidden = false;
  input('key-file').value = '';
  status('signin-status', message, message !== '');
}

// ---------------------------------------------------------------------------------------------------
// Range and pages

const isoDay = (time: number) => new Date(time).toISOString().slice(0, 10);

function initRange(): void {
  const today = Math.floor(Date.now() / DAY) * DAY;
  input('range-to').value = isoDay(today);
  input('range-from').value = isoDay(today - 6 * DAY);
}

/** The query of the range picker: `from` and the day after `to` (UTC), within the hub's limits for hours. */
type Query = { from: Date; to: Date; bucket: Bucket };

function range(): Query {
  const bucket = ($('range-bucket') as HTMLSelectElement).value as Bucket;
  let from = Date.parse(`${input('range-from').value}T00:00:00Z`);
  const to = Date.parse(`${input('range-to').value}T00:00:00Z`) + DAY;
  let note = '';
  if (Number.isNaN(from) || Number.isNaN(to) || from >= to) {
    from = to - 7 * DAY;
    note = 'The range starts after it ends: showing the week before its end.';
  }
  if (bucket === 'hour' && to - from > MAX_HOUR_DAYS * DAY) {
    from = to - MAX_HOUR_DAYS * DAY;
    note = `Hourly figures cover ${MAX_HOUR_DAYS} days at most: showing the last ${MAX_HOUR_DAYS} days of the range.`;
  }
  $('range-note').textContent = note;
  return { from: new Date(from), to: new Date(to), bucket };
}

function show(page: Page): void {
  state.page = page;
  for (const tab of document.querySelectorAll<HTMLElement>('.tab')) {
    if (tab.dataset.page === page) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  for (const name of ['provider', 'consumer', 'operator'] as const) $(`page-${name}`).hidden = name !== page;
  void refresh();
}

/** Reloads the page shown; a call while one runs makes it run once more after. */
async function refresh(): Promise<void> {
  if (!state.session) return;
  if (state.loading) {
    state.again = true;
    return;
  }
  state.loading = true;
  const session = state.session;
  const page = state.page;
  const query = range();
  try {
    if (page === 'provider') await loadProvider(session, query);
    else if (page === 'consumer') await loadConsumer(session, query);
    else await loadOperator(session, query);
    // What is on screen, for tests and scripts that wait for it.
    document.body.dataset.loaded = `${page}/${query.bucket}`;
    status('load-status', `Updated ${format.time(new Date())} UTC; updates every ${Math.round(pollMs / 1000)} s.`);
  } catch (error) {
    if (error instanceof HubError && error.code === 'UNAUTHORIZED') {
      signOut('Your session ended: sign in again.');
    } else {
      status('load-status', `Could not update: ${reason(error)}`, true);
    }
  } finally {
    state.loading = false;
    if (state.again && state.session) {
      state.again = false;
      void refresh();
    }
  }
}

const times = (buckets: readonly { start: string }[]) => buckets.map((bucket) => Date.parse(bucket.start) / 1000);

function cell(text: string, options: { numeric?: boolean; title?: string; className?: string } = {}) {
  const td = document.createElement('td');
  td.textContent = text;
  if (options.numeric) td.classList.add('num');
  if (options.className) td.classList.add(options.className);
  if (options.title) td.title = options.title;
  return td;
}

function fillTable(id: string, rows: HTMLTableCellElement[][], empty: string): void {
  const body = ($(id) as HTMLTableElement).tBodies[0]!;
  const columns = ($(id) as HTMLTableElement).tHead!.rows[0]!.cells.length;
  body.replaceChildren(
    ...(rows.length === 0
      ? [tableRow([Object.assign(cell(empty, { className: 'empty' }), { colSpan: columns })])]
      : rows.map(tableRow)),
  );
}

function tableRow(cells: HTMLTableCellElement[]): HTMLTableRowElement {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

function addressCell(address: string): HTMLTableCellElement {
  const td = cell(format.short(address), { title: address });
  td.dataset.address = address;
  return td;
}

function summary(id: string, what: string, buckets: readonly { start: string; amount: bigint }[], bucket: Bucket) {
  const busiest = buckets.reduce<{ start: string; amount: bigint } | undefined>(
    (best, b) => (b.amount > (best?.amount ?? 0n) ? b : best),
    undefined,
  );
  const total = buckets.reduce((sum, b) => sum + b.amount, 0n);
  const nonZero = buckets.filter((b) => b.amount > 0n).length;
  $(id).textContent = busiest
    ? `${what} per ${bucket}, ${buckets.length} ${bucket}s: ${format.amount(total, decimals())} in all, in ${nonZero} of them; the most, ${format.amount(busiest.amount, decimals())}, in the ${bucket} of ${format.time(busiest.start)} UTC.`
    : `${what} per ${bucket}, ${buckets.length} ${bucket}s: nothing in the range.`;
}

// ---------------------------------------------------------------------------------------------------
// Provider

async function loadProvider(session: HubSession, query: Query): Promise<void> {
  const address = session.address;
  // The lists take a range and no bucket (the SDK would send one it is given).
  const listed = { from: query.from, to: query.to };
  const [history, consumers, settlements] = await Promise.all([
    hub.history.provider(address, query, session),
    hub.history.providerConsumers(address, listed, session),
    hub.history.providerSettlements(address, listed, session),
  ]);
  // A provider the hub never promised anything has no quote (UNKNOWN_PROVIDER): nothing to settle.
  const quote: HubSettlementQuote | undefined =
    history.books.promised > 0n ? await hub.settlementQuote(address) : undefined;
  const d = decimals();
  showAmount('p-earned', history.total.amount);
  showText('p-exchanges', format.count(history.total.exchanges), String(history.total.exchanges));
  showAmount('p-hub-fee', history.total.hubFee);
  const pending = state.info?.pendingFee;
  showText(
    'p-fee',
    `${(history.fee / 100).toFixed(2)} % (${history.fee} bps)${pending ? `, ${pending.fee} bps from ${format.time(new Date(Number(pending.effectiveAt) * 1000))} UTC` : ''}`,
    String(history.fee),
  );
  showAmount('p-promised', history.books.promised);
  showAmount('p-settled', history.books.settled);
  showAmount('p-unsettled', history.books.unsettled);
  const next = quote ?? { amount: 0n, hubFee: 0n, relayerFee: 0n };
  showAmount('p-next-amount', next.amount);
  showAmount('p-next-hub-fee', next.hubFee);
  showAmount('p-next-relayer-fee', next.relayerFee);
  const payout = next.amount - next.hubFee - next.relayerFee;
  showAmount('p-next-payout', payout > 0n ? payout : 0n);

  $('p-chart-title').textContent = `Earnings per ${query.bucket} (UTC)`;
  plot($('p-chart'), query, times(history.buckets), [
    {
      label: 'Earned',
      values: history.buckets.map((b) => format.plotted(b.amount, d)),
      color: '#1f5fbf',
      bars: true,
    },
    { label: 'Hub fee', values: history.buckets.map((b) => format.plotted(b.hubFee, d)), color: '#b3261e' },
  ]);
  summary('p-chart-summary', 'Earnings', history.buckets, query.bucket);

  fillTable(
    'p-consumers',
    consumers.consumers.map((row) => [
      addressCell(row.consumer),
      amountCell(row.amount),
      cell(format.count(row.exchanges), { numeric: true }),
    ]),
    'No consumer paid in this range.',
  );
  fillTable('p-settlements', settlements.settlements.map(settlementRow), 'No settlement in this range.');
}

function amountCell(value: bigint | null): HTMLTableCellElement {
  const td = cell(value === null ? '–' : format.amount(value, decimals()), { numeric: true });
  if (value !== null) td.dataset.value = value.toString();
  return td;
}

function settlementRow(settlement: HubProviderSettlement): HTMLTableCellElement[] {
  const statusCell = cell('');
  const badge = document.createElement('span');
  badge.className = `badge status-${settlement.status}`;
  badge.textContent = settlement.status;
  statusCell.append(badge);
  statusCell.dataset.status = settlement.status;
  if (settlement.error) {
    statusCell.append(` ${settlement.error.code}`);
    statusCell.title = settlement.error.message;
  }
  const tx = settlement.txHash ? cell(format.short(settlement.txHash), { title: settlement.txHash }) : cell('–');
  return [
    cell(format.time(settlement.createdAt)),
    statusCell,
    amountCell(settlement.total),
    amountCell(settlement.amount),
    amountCell(settlement.hubFee),
    amountCell(settlement.relayerFee),
    amountCell(settlement.payout),
    tx,
  ];
}

// ---------------------------------------------------------------------------------------------------
// Consumer

async function loadConsumer(session: HubSession, query: Query): Promise<void> {
  const [history, providers] = await Promise.all([
    hub.history.consumer(session.address, query, session),
    hub.history.consumerProviders(session.address, { from: query.from, to: query.to }, session),
  ]);
  showAmount('c-spent', history.total.amount);
  showText('c-exchanges', format.count(history.total.exchanges), String(history.total.exchanges));
  $('c-chart-title').textContent = `Spending per ${query.bucket} (UTC)`;
  plot($('c-chart'), query, times(history.buckets), [
    {
      label: 'Spent',
      values: history.buckets.map((b) => format.plotted(b.amount, decimals())),
      color: '#6a3fb5',
      bars: true,
    },
  ]);
  summary('c-chart-summary', 'Spending', history.buckets, query.bucket);
  fillTable(
    'c-providers',
    providers.providers.map((row) => [
      addressCell(row.provider),
      amountCell(row.amount),
      cell(format.count(row.exchanges), { numeric: true }),
    ]),
    'You paid no provider in this range.',
  );
}

// ---------------------------------------------------------------------------------------------------
// Operator

async function scrape(): Promise<Scrape> {
  const response = await fetch(`${base}/metrics`, { headers: { accept: 'text/plain' } });
  if (!response.ok) throw new Error(`GET /metrics answered ${response.status}`);
  return parseMetrics(await response.text());
}

async function loadOperator(session: HubSession, query: Query): Promise<void> {
  const [info, metrics, history] = await Promise.all([hub.info(), scrape(), hub.history.hub(query, session)]);
  state.info = info;
  const d = decimals();
  const stake = info.stake;
  const freeFunds = info.freeFunds;
  const liabilitiesFloat = sum(metrics, 'chit_unsettled_liabilities_tokens');
  const liabilities =
    liabilitiesFloat === undefined ? history.money.at(-1)?.liabilities : BigInt(Math.round(liabilitiesFloat));
  const gas = sum(metrics, 'chit_relayer_gas_balance_wei');
  const queued =
    (sum(metrics, 'chit_queue_jobs', { state: 'waiting' }) ?? 0) +
    (sum(metrics, 'chit_queue_jobs', { state: 'delayed' }) ?? 0) +
    (sum(metrics, 'chit_queue_jobs', { state: 'active' }) ?? 0) +
    (sum(metrics, 'chit_queue_jobs', { state: 'prioritized' }) ?? 0);
  const failed = sum(metrics, 'chit_settlements', { status: 'failed' }) ?? 0;
  const exchanged = sum(metrics, 'chit_exchanges_total', { outcome: 'ok' }) ?? 0;

  showHubStatus(info.status);
  showText('o-status', info.status, info.status);
  showAmount('o-stake', stake);
  showAmount('o-free-funds', freeFunds);
  if (liabilities === undefined) showText('o-liabilities', '–');
  else showAmount('o-liabilities', liabilities);
  showText(
    'o-fee',
    `${info.fee} bps${info.pendingFee ? `, ${info.pendingFee.fee} bps from ${format.time(new Date(Number(info.pendingFee.effectiveAt) * 1000))} UTC` : ''}`,
    String(info.fee),
  );
  if (gas === undefined) showText('o-gas', '–');
  else showText('o-gas', format.ether(gas), String(gas));
  showText('o-queue', format.count(queued), String(queued));
  showText('o-failed', format.count(failed), String(failed));
  const now = performance.now();
  const previous = state.previousScrape;
  if (previous && now > previous.at) {
    const rate = Math.max(0, (exchanged - previous.exchanges) / ((now - previous.at) / 1000));
    showText('o-rate', rate.toFixed(2), rate.toFixed(4));
  }
  state.previousScrape = { at: now, exchanges: exchanged };

  const warnings: Array<{ level: 'danger' | 'warning'; text: string }> = [];
  if (info.status !== 'active') warnings.push({ level: 'danger', text: `The hub is ${info.status}.` });
  if (liabilities !== undefined && liabilities > freeFunds) {
    warnings.push({
      level: 'danger',
      text: `Liabilities (${format.amount(liabilities, d)}) exceed the free funds (${format.amount(freeFunds, d)}): provider claims would be paid from the stake. Add free funds.`,
    });
  }
  if (liabilities !== undefined && stake > 0n && liabilities * 100n >= stake * BigInt(NEAR_STAKE * 100)) {
    const share = Number((liabilities * 1000n) / stake) / 10;
    warnings.push({
      level: liabilities >= stake ? 'danger' : 'warning',
      text: `Liabilities are ${share} % of the stake: settle or add stake before the hub can promise no more.`,
    });
  }
  if (gas !== undefined && gas < LOW_GAS_WEI) {
    warnings.push({
      level: 'warning',
      text: `The relayer has ${format.ether(gas)} for gas: top it up before settlements stall.`,
    });
  }
  if (failed > 0) {
    warnings.push({ level: 'warning', text: `${failed} settlement(s) failed: see their error codes in the logs.` });
  }
  const list = $('o-warnings');
  list.replaceChildren(
    ...(warnings.length === 0 ? [{ level: 'fine', text: 'No warnings.' }] : warnings).map((warning) => {
      const li = document.createElement('li');
      li.className = warning.level;
      li.textContent = warning.text;
      return li;
    }),
  );
  list.dataset.count = String(warnings.length);

  const errors = [...(metrics.get('chit_errors_total') ?? [])]
    .filter((sample) => sample.value > 0)
    .sort((a, b) => b.value - a.value);
  fillTable(
    'o-errors',
    errors.map((sample) => [cell(sample.labels.code ?? '?'), cell(format.count(sample.value), { numeric: true })]),
    'No error answered since the hub started.',
  );

  showAmount('o-volume', history.total.amount);
  showText('o-exchanges', format.count(history.total.exchanges), String(history.total.exchanges));
  const money = history.money;
  plot(
    $('o-money-chart'),
    query,
    money.map((sample) => Date.parse(sample.at) / 1000),
    [
      { label: 'Liabilities', values: money.map((s) => format.plotted(s.liabilities, d)), color: '#b3261e' },
      { label: 'Stake', values: money.map((s) => format.plotted(s.stake, d)), color: '#1f5fbf' },
      { label: 'Free funds', values: money.map((s) => format.plotted(s.freeFunds, d)), color: '#17733b' },
    ],
  );
  const last = money.at(-1);
  $('o-money-summary').textContent = last
    ? `${money.length} sample(s), the last of each ${query.bucket}. At ${format.time(last.at)} UTC: liabilities ${format.amount(last.liabilities, d)}, stake ${format.amount(last.stake, d)}, free funds ${format.amount(last.freeFunds, d)}.`
    : 'No sample of the hub money in this range yet (one is taken every minute).';
  $('o-volume-title').textContent = `Exchanges per ${query.bucket} (UTC)`;
  plot($('o-volume-chart'), query, times(history.buckets), [
    { label: 'Exchanges', values: history.buckets.map((b) => b.exchanges), color: '#1f5fbf', bars: true },
  ]);
  $('o-volume-summary').textContent =
    `${history.total.exchanges} exchanges in ${history.buckets.length} ${query.bucket}s, for a volume of ${format.amount(history.total.amount, d)}.`;
  fillTable(
    'o-batches',
    history.batches.map((batch) => [
      cell(format.time(batch.at)),
      cell(batch.kind),
      cell(format.count(batch.claims), { numeric: true }),
      cell(batch.gasUsed.toString(), { numeric: true }),
      cell(String(batch.block), { numeric: true }),
      cell(format.short(batch.hash), { title: batch.hash }),
    ]),
    'No transaction mined in this range.',
  );
}

function showHubStatus(hubStatus: string): void {
  const badge = $('hub-status');
  badge.textContent = hubStatus;
  badge.className = `badge status-${hubStatus}`;
}

// ---------------------------------------------------------------------------------------------------
// CSV downloads

async function download(kind: 'earnings' | 'settlements' | 'spending' | 'hub', button: HTMLButtonElement) {
  const session = state.session;
  if (!session) return;
  button.disabled = true;
  try {
    const query = range();
    const csv = await hub.history.csv(kind, kind === 'hub' ? undefined : session.address, query, session);
    const name = `chit-${kind}${kind === 'hub' ? '' : `-${session.address}`}-${isoDay(query.from.getTime())}-${isoDay(query.to.getTime())}.csv`;
    const url = URL.createObjectURL(new Blob([csv], { type: 'text/csv' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = name;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
  } catch (error) {
    status('load-status', `Could not download: ${reason(error)}`, true);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------------------
// Start

function start(): void {
  $('hub-url').textContent = base;
  if (!(window as unknown as { ethereum?: unknown }).ethereum) {
    ($('wallet-sign-in') as HTMLButtonElement).disabled = true;
    $('wallet-missing').hidden = false;
  }
  $('wallet-sign-in').addEventListener('click', () => void walletSignIn());
  $('key-form').addEventListener('submit', (event) => void keyFileSignIn(event as SubmitEvent));
  $('sign-out').addEventListener('click', () => signOut());
  for (const tab of document.querySelectorAll<HTMLElement>('.tab')) {
    tab.addEventListener('click', () => show(tab.dataset.page as Page));
  }
  initRange();
  $('range').addEventListener('change', () => void refresh());
  $('range').addEventListener('submit', (event) => event.preventDefault());
  const buttons: Array<[string, 'earnings' | 'settlements' | 'spending' | 'hub']> = [
    ['p-csv-earnings', 'earnings'],
    ['p-csv-settlements', 'settlements'],
    ['c-csv-spending', 'spending'],
    ['o-csv-hub', 'hub'],
  ];
  for (const [id, kind] of buttons) {
    const button = $(id) as HTMLButtonElement;
    button.addEventListener('click', () => void download(kind, button));
  }
  let resizing: number | undefined;
  window.addEventListener('resize', () => {
    window.clearTimeout(resizing);
    resizing = window.setTimeout(fitPlots, 150);
  });
  hub.info().then(
    (info) => {
      state.info = info;
      showHubStatus(info.status);
    },
    (error: unknown) => status('signin-status', `The hub does not answer: ${reason(error)}`, true),
  );
}

start();
