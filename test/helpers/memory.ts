import { readFileSync } from 'node:fs';

/** The VmFlags of this process's mapping that holds `address` (`hg`: advised for transparent huge pages). */
export function vmFlagsAt(address: bigint): string[] {
  let inside = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (range) inside = BigInt(`0x${range[1]}`) <= address && address < BigInt(`0x${range[2]}`);
    else if (inside && line.startsWith('VmFlags:')) return line.slice('VmFlags:'.length).trim().split(' ');
  }
  throw new Error(`no mapping holds ${address.toString(16)}`);
}
