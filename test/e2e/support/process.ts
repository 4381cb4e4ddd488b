import { spawn } from 'node:child_process';

/** What a finished child process printed, and its exit code. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * The environment of this process without npm's settings of an enclosing `npm test` (workspace,
 * prefix…), which would steer npx, nor CHIT_ settings, which would steer `chit`; `extra` on top.
 */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^(npm_|CHIT_)/i.test(key))),
    ...extra,
  };
}

/** Runs `command` with `args` to its end, collecting what it prints. */
export function runProcess(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  return new Promise<Run>((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
