import { existsSync, readFileSync } from 'node:fs';
import type { Pool } from 'pg';

// CPU time of the processes a benchmark measures, from Linux's /proc: the hub process, the Postgres
// backends of the bench database, and the load generator (process.cpuUsage). Shared by the benches.

/** CPU time (user + system) a process has used, in milliseconds, from /proc; undefined off Linux. */
export function cpuMs(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : statCpuMs(`/proc/${pid}/stat`);
}

/**
 * CPU time of a process's main thread alone (the one that runs its event loop; its thread id is the
 * process id), in milliseconds; undefined off Linux.
 */
export function mainThreadCpuMs(pid: number | undefined): number | undefined {
  return pid === undefined ? undefined : statCpuMs(`/proc/${pid}/task/${pid}/stat`);
}

function statCpuMs(file: string): number | undefined {
  try {
    // Fields after the command name: state is 3rd, utime the 14th and stime the 15th of the whole line.
    const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS;
  } catch {
    return undefined;
  }
}

/** Linux's USER_HZ, the unit of /proc/<pid>/stat times: 100 on every mainstream build. */
const CLOCK_TICKS = 100;

/**
 * CPU used by the Postgres backends of the bench database since the first sample. Sampled every
 * 250 ms: a backend the pool opens meanwhile counts from its start, one it closes up to its last sample.
 */
export class BackendCpu {
  private readonly first = new Map<number, number>();
  private readonly last = new Map<number, number>();
  available = true;

  constructor(private readonly pool: Pool) {}

  async sample(): Promise<void> {
    const { rows } = await this.pool.query(
      'SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()',
    );
    const initial = this.first.size === 0 && this.last.size === 0;
    for (const { pid } of rows as { pid: number }[]) {
      const used = cpuMs(pid);
      if (used === undefined) {
        if (!existsSync(`/proc/${pid}`)) continue;
        this.available = false;
        return;
      }
      if (!this.first.has(pid)) this.first.set(pid, initial ? used : 0);
      this.last.set(pid, used);
    }
    if (rows.length === 0 && initial) this.available = existsSync('/proc/self/stat');
  }

  /**
   * Samples every `ms` until the returned function is called. A background sample that fails is
   * skipped (the next one, or the caller's last, counts): one that fails because a clean-up ended the
   * pool under it must not end the process before the clean-up has dropped its database.
   */
  sampleEvery(ms: number): () => void {
    const timer = setInterval(() => this.sample().catch(() => {}), ms);
    timer.unref();
    return () => clearInterval(timer);
  }

  get usedMs(): number {
    let total = 0;
    for (const [pid, used] of this.last) total += used - (this.first.get(pid) ?? 0);
    return total;
  }
}
