/**
 * Empty books against big ones: `npm run bench:books`. Runs one level of `bench:hub` (by default its
 * headline, 16 exchanges per request) on a stack whose books already hold CHIT_BOOKS_EXCHANGES
 * exchanges and on a stack whose books are empty, in turn, CHIT_BOOKS_PAIRS times, then prints each
 * run and how the big books compare: the exchange's target is the same figures within 10 %.
 *
 * Each run is a stack of its own (`runExchangeBench`: hub, anvil, a database of its own, the warm-up),
 * so the big books are seeded each time (about 9 minutes for 10 million on this machine).
 *
 *   CHIT_BOOKS_EXCHANGES (10000000)  exchanges in the big books
 *   CHIT_BOOKS_PAIRS (2)             runs on each kind of books, alternating, big first
 *   CHIT_BOOKS_LEVEL (32x250)        providers at once x exchanges per provider
 *   CHIT_BOOKS_BATCH (16)            exchanges per request
 *   --json FILE                      also write every run's figures as JSON
 */
import { writeFileSync } from 'node:fs';
import { type LevelFigures, runExchangeBench } from './exchange.bench';

interface Run {
  books: number;
  figures: LevelFigures;
}

function positiveInteger(name: string, fallback: number): number {
  const value = Number(process.env[name] ?? fallback);
  if (!Number.isInteger(value) || value < 1) throw new Error(`${name}: expected a whole number of 1 or more`);
  return value;
}

const BIG = positiveInteger('CHIT_BOOKS_EXCHANGES', 10_000_000);
const PAIRS = positiveInteger('CHIT_BOOKS_PAIRS', 2);
const BATCH = positiveInteger('CHIT_BOOKS_BATCH', 16);
const LEVEL = /^(\d+)x(\d+)$/.exec(process.env.CHIT_BOOKS_LEVEL ?? '32x250');
if (!LEVEL) throw new Error('CHIT_BOOKS_LEVEL: expected PROVIDERSxEXCHANGES, e.g. 32x250');

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
};
const figure = (value: number) => Math.round(value).toLocaleString('en');

async function main(): Promise<void> {
  const level = {
    workers: Number(LEVEL![1]),
    exchangesPerWorker: Number(LEVEL![2]),
    ...(BATCH > 1 && { batch: BATCH, sign: 'latest' as const }),
  };
  const runs: Run[] = [];
  for (let pair = 1; pair <= PAIRS; pair++) {
    for (const books of [BIG, 0]) {
      console.log(`run ${runs.length + 1} of ${PAIRS * 2}: books of ${books.toLocaleString('en')} exchanges`);
      const started = performance.now();
      const result = await runExchangeBench({
        levels: [level],
        books,
        log: (line) => {
          if (!line.startsWith('seeding the books:')) console.log(`  ${line}`);
        },
      });
      const figures = result.levels[0]!;
      runs.push({ books, figures });
      console.log(
        `  ${figure(figures.exchangesPerSecond)} exchanges/s, p99 ${figures.p99Ms.toFixed(1)} ms per request (${((performance.now() - started) / 1000).toFixed(0)} s)`,
      );
    }
  }

  const rows = runs.map(({ books, figures }) => {
    const cpu = figures.cpuUs;
    return `| ${books.toLocaleString('en')} | ${figure(figures.exchangesPerSecond)} | ${figure(figures.firstQuarterPerSecond)} / ${figure(figures.lastQuarterPerSecond)} | ${figures.p50Ms.toFixed(1)} | ${figures.p99Ms.toFixed(1)} | ${figures.exchangesPerTransaction.toFixed(1)} | ${cpu ? `${cpu.hub} (${cpu.hubMainThread ?? '?'}) / ${cpu.postgres} / ${cpu.loadGenerator}` : 'n/a'} |`;
  });
  console.log(
    [
      '',
      `${level.workers} providers at once × ${level.exchangesPerWorker} exchanges, ${BATCH} per request, runs in the order made:`,
      '',
      '| books (exchanges) | exchanges/s | first / last quarter | p50 ms per request | p99 ms per request | exchanges per transaction | CPU µs per exchange: hub (main thread) / Postgres / load generator |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
  const of = (books: number, pick: (figures: LevelFigures) => number) =>
    median(runs.filter((run) => run.books === books).map((run) => pick(run.figures)));
  const compare = (what: string, pick: (figures: LevelFigures) => number) => {
    const big = of(BIG, pick);
    const empty = of(0, pick);
    const change = ((big - empty) / empty) * 100;
    console.log(
      `${what}: ${figure(big)} on ${BIG.toLocaleString('en')} against ${figure(empty)} on empty books (medians): ${change >= 0 ? '+' : ''}${change.toFixed(1)} %`,
    );
  };
  compare('exchanges/s', (figures) => figures.exchangesPerSecond);
  compare('p99 ms per request', (figures) => figures.p99Ms);
  compare('Postgres µs per exchange', (figures) => figures.cpuUs?.postgres ?? Number.NaN);
  compare('hub µs per exchange', (figures) => figures.cpuUs?.hub ?? Number.NaN);

  const json = process.argv.includes('--json') ? process.argv[process.argv.indexOf('--json') + 1] : undefined;
  if (json) writeFileSync(json, `${JSON.stringify({ big: BIG, level, runs }, null, 2)}\n`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
