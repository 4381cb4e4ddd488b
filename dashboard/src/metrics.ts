// The hub's live figures, read from its Prometheus text (GET /metrics).

/** One sample: a metric's labels and its value. */
export interface Sample {
  labels: Record<string, string>;
  value: number;
}

/** Samples by metric name. */
export type Scrape = Map<string, Sample[]>;

/**
 * Parses the Prometheus text exposition format (comments skipped).
 *
 * @example
 * parseMetrics('chit_stake_tokens 5\n').get('chit_stake_tokens'); // [{ labels: {}, value: 5 }]
 */
export function parseMetrics(text: string): Scrape {
  const scrape: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const [, name, labelText, value] = match as unknown as [string, string, string | undefined, string];
    const labels: Record<string, string> = {};
    for (const label of (labelText ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[label[1]!] = label[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const list = scrape.get(name) ?? [];
    list.push({ labels, value: Number(value) });
    scrape.set(name, list);
  }
  return scrape;
}

/** The sum of a metric's samples whose labels match `where` (undefined when it has none). */
export function sum(scrape: Scrape, name: string, where: Record<string, string> = {}): number | undefined {
  const samples = (scrape.get(name) ?? []).filter((sample) =>
    Object.entries(where).every(([key, value]) => sample.labels[key] === value),
  );
  return samples.length === 0 ? undefined : samples.reduce((total, sample) => total + sample.value, 0);
}
