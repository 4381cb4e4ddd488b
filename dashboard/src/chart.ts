import uPlot from 'uplot';

/** One line or bar series of a plot. */
export interface Series {
  label: string;
  values: number[];
  color: string;
  bars?: boolean;
}

const charts = new Map<HTMLElement, uPlot>();

/**
 * Draws (or redraws) a time plot of `range` in `container`: x in unix seconds (UTC), one scale for every series.
 * The container's `role="img"` and its text summary (set by the caller) stand for it to screen readers.
 */
export function plot(container: HTMLElement, range: { from: Date; to: Date }, times: number[], series: Series[]): void {
  charts.get(container)?.destroy();
  const width = Math.max(200, container.clientWidth);
  const height = width < 500 ? 220 : 280;
  const options: uPlot.Options = {
    width,
    height,
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1e3), 'Etc/UTC'),
    legend: { show: true },
    cursor: { drag: { x: false, y: false } },
    // The whole range, however few samples: a single one is not stretched over years.
    scales: { x: { time: true, range: [range.from.getTime() / 1000, range.to.getTime() / 1000] } },
    axes: [{}, { size: 70 }],
    series: [
      {},
      ...series.map((s) => ({
        label: s.label,
        stroke: s.color,
        width: 2,
        ...(s.bars
          ? { fill: `${s.color}99`, paths: uPlot.paths.bars!({ size: [0.7, 60] }), points: { show: false } }
          : {}),
      })),
    ],
  };
  const chart = new uPlot(options, [times, ...series.map((s) => s.values)], container);
  charts.set(container, chart);
}

/** Fits every plot to its container's width (on a resize or a rotation). */
export function fitPlots(): void {
  for (const [container, chart] of charts) {
    const width = Math.max(200, container.clientWidth);
    if (width !== chart.width) chart.setSize({ width, height: width < 500 ? 220 : 280 });
  }
}

/** Removes every plot (at sign-out). */
export function clearPlots(): void {
  for (const chart of charts.values()) chart.destroy();
  charts.clear();
}
