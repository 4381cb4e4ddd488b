import { formatUnits } from 'viem';

/** A token amount in base units, shown with `decimals` (trailing zeros dropped, thousands grouped). */
export function amount(value: bigint, decimals: number): string {
  const [whole = '0', fraction] = formatUnits(value, decimals).split('.');
  const negative = whole.startsWith('-');
  const digits = negative ? whole.slice(1) : whole;
  const grouped = digits.replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  return `${negative ? '-' : ''}${grouped}${fraction ? `.${fraction}` : ''}`;
}

/** An amount as a float of tokens, for a plot. */
export function plotted(value: bigint, decimals: number): number {
  return Number(formatUnits(value, decimals));
}

/** A UTC time, to the minute: `2026-12-05 14:00`. */
export function time(iso: string | Date): string {
  const date = typeof iso === 'string' ? new Date(iso) : iso;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')}`;
}

/** An address shortened for a narrow cell: `0x1234…abcd` (the full one goes in the title). */
export function short(address: string): string {
  return `${address.slice(0, 6)}…${address.slice(-4)}`;
}

/** A count with thousands grouped. */
export function count(value: number): string {
  return value.toLocaleString('en-US');
}

/** Wei as ETH, to 6 decimals. */
export function ether(wei: number): string {
  return `${(wei / 1e18).toLocaleString('en-US', { maximumFractionDigits: 6 })} ETH`;
}
