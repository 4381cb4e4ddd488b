import { openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { ReadStream, WriteStream } from 'node:tty';
import { CliError } from './errors.js';

interface Terminal {
  input: ReadStream;
  output: NodeJS.WritableStream;
  close(): void;
}

/** The user's terminal: stdin and stderr when stdin is one, else /dev/tty; undefined in scripts and CI. */
function openTerminal(): Terminal | undefined {
  if (process.stdin.isTTY) {
    return { input: process.stdin as ReadStream, output: process.stderr, close: () => process.stdin.pause() };
  }
  try {
    const input = new ReadStream(openSync('/dev/tty', 'r'));
    const output = new WriteStream(openSync('/dev/tty', 'w'));
    return {
      input,
      output,
      close: () => {
        input.destroy();
        output.destroy();
      },
    };
  } catch {
    return undefined;
  }
}

/**
 * Reads a secret (a password, a private key) from the terminal without echoing it.
 *
 * @throws {CliError} `NO_TERMINAL` when no terminal is attached (`hint` says what to use instead);
 * `ABORTED` on Ctrl-C.
 * @example
 * const password = await readSecret('Keystore password: ', 'Set CHIT_PASSWORD in scripts.');
 */
export function readSecret(prompt: string, hintWithoutTerminal: string): Promise<string> {
  const terminal = openTerminal();
  if (!terminal) {
    throw new CliError('NO_TERMINAL', `No terminal to ask for the ${prompt.replace(/:\s*$/, '')}`, hintWithoutTerminal);
  }
  const { input, output } = terminal;
  output.write(prompt);
  return new Promise((resolve, reject) => {
    let secret = '';
    const wasRaw = input.isRaw;
    input.setRawMode(true);
    input.setEncoding('utf8');
    input.resume();
    const finish = (error?: Error) => {
      input.setRawMode(wasRaw);
      input.off('data', onData);
      output.write('\n');
      terminal.close();
      if (error) reject(error);
      else resolve(secret);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === '\r' || char === '\n' || char === '\u0004') return finish();
        if (char === '\u0003') return finish(new CliError('ABORTED', 'Aborted', 'Nothing was done.'));
        if (char === '\u007f' || char === '\b') secret = secret.slice(0, -1);
        else if (char >= ' ') secret += char;
      }
    };
    input.on('data', onData);
  });
}

/**
 * Asks a yes/no question on the terminal; only `y` or `yes` is a yes.
 *
 * @throws {CliError} `CONFIRMATION_REQUIRED` when no terminal is attached.
 * @example
 * if (!(await confirm('Settle 12.5 tokens?'))) return;
 */
export async function confirm(question: string): Promise<boolean> {
  const terminal = openTerminal();
  if (!terminal) {
    throw new CliError(
      'CONFIRMATION_REQUIRED',
      'Confirmation needed, and there is no terminal to ask on',
      'Read the figures above and run the command again with --yes to proceed without asking.',
    );
  }
  const lines = createInterface({ input: terminal.input, output: terminal.output });
  try {
    const answer = await new Promise<string>((resolve) => lines.question(`${question} [y/N] `, resolve));
    return /^(y|yes)$/i.test(answer.trim());
  } finally {
    lines.close();
    terminal.close();
  }
}
