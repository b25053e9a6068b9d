import { type Command, InvalidArgumentError } from 'commander';

export function integer(value: string): number {
  const parsed = Number(value);
  if (!Number.isInteger(parsed)) throw new InvalidArgumentError(`expected a whole number, got '${value}'`);
  return parsed;
}

/** A flag's value parsed by a function that throws plain errors, as commander's invalid-argument error. */
export function cliValue<T>(parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
}

export function number(value: string): number {
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed)) throw new InvalidArgumentError(`expected a number, got '${value}'`);
  return parsed;
}

/** Flags shared by every command that may fetch a model from the Hub. */
export function hubOptions(command: Command): Command {
  return command
    .option('--revision <rev>', 'branch, tag or commit of a Hub model (default: main)')
    .option('--offline', 'use only the local cache (same as HF_HUB_OFFLINE=1)');
}

export async function readStdin(): Promise<string> {
  if (process.stdin.isTTY) throw new InvalidArgumentError('no prompt given (pass it as an argument or on standard input)');
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8').replace(/\n$/, '');
}

export function hubOptionsFrom(flags: Record<string, unknown>): { revision?: string; offline?: boolean } {
  return { revision: flags.revision as string | undefined, offline: flags.offline ? true : undefined };
}
