/**
 * Runs a compiled grammar byte by byte. A configuration is the set of stacks the input so far can be in
 * (usually one); each stack is a chain of frames, the top one a DFA state of the rule being read, the ones
 * below the states to return to. Frames and configurations are interned as integers and every
 * configuration's transition on each byte is remembered, so after warming up a step is an array lookup:
 * the lazily built DFA of the pushdown automaton, limited to the configurations outputs actually reach.
 */
import type { CompiledGrammar } from './grammar.js';

/** Nesting deeper than this (calls inside calls) is not followed: it bounds recursion such as nested arrays. */
export const MAX_NESTING = 64;
const ROOT = -1;
export const UNKNOWN = -2;
export const DEAD = -1;

interface Configuration {
  /** Frames whose state reads a byte, after following calls and returns. */
  ready: Int32Array;
  complete: boolean;
  distance: number;
  /** Next configuration per byte: UNKNOWN until asked, DEAD when the byte is not allowed. */
  next: Int32Array;
}

export class GrammarMatcher {
  private readonly frameState: number[] = [];
  private readonly frameParent: number[] = [];
  private readonly frameDepth: number[] = [];
  /** Fewest bytes that end the frame's rule and every rule below it. */
  private readonly frameDistance: number[] = [];
  private readonly frameIds = new Map<string, number>();
  private readonly configurations: Configuration[] = [];
  private readonly configurationIds = new Map<string, number>();
  readonly initial: number;

  constructor(private readonly grammar: CompiledGrammar) {
    this.initial = this.configuration([this.frame(grammar.ruleStart[0]!, ROOT)]);
  }

  get configurationCount(): number {
    return this.configurations.length;
  }

  isComplete(configuration: number): boolean {
    return this.configurations[configuration]!.complete;
  }

  /** Fewest bytes (so at most that many tokens, every byte being a token) that complete the output. */
  distance(configuration: number): number {
    return this.configurations[configuration]!.distance;
  }

  /** The configuration's remembered transitions by byte (UNKNOWN: ask step()), for loops that walk many bytes. */
  transitions(configuration: number): Int32Array {
    return this.configurations[configuration]!.next;
  }

  /** The configuration after `byte`, or DEAD. */
  step(configuration: number, byte: number): number {
    const table = this.configurations[configuration]!.next;
    let next = table[byte]!;
    if (next === UNKNOWN) table[byte] = next = this.computeStep(configuration, byte);
    return next;
  }

  private computeStep(configuration: number, byte: number): number {
    const frames = new Set<number>();
    for (const frame of this.configurations[configuration]!.ready) {
      const state = this.grammar.byteNext[this.frameState[frame]! * 256 + byte]!;
      if (state >= 0) frames.add(this.frame(state, this.frameParent[frame]!));
    }
    return frames.size === 0 ? DEAD : this.configuration([...frames]);
  }

  private frame(state: number, parent: number): number {
    const key = `${state},${parent}`;
    let id = this.frameIds.get(key);
    if (id === undefined) {
      id = this.frameState.length;
      this.frameState.push(state);
      this.frameParent.push(parent);
      this.frameDepth.push(parent === ROOT ? 0 : this.frameDepth[parent]! + 1);
      this.frameDistance.push(this.grammar.distance[state]! + (parent === ROOT ? 0 : this.frameDistance[parent]!));
      this.frameIds.set(key, id);
    }
    return id;
  }

  private configuration(frames: number[]): number {
    frames.sort((a, b) => a - b);
    const key = frames.join(',');
    let id = this.configurationIds.get(key);
    if (id === undefined) {
      id = this.configurations.length;
      this.configurations.push(this.close(frames));
      this.configurationIds.set(key, id);
    }
    return id;
  }

  /** Follows calls (push) and rule ends (pop) from the frames until every frame left reads a byte. */
  private close(frames: readonly number[]): Configuration {
    const { calls, accepting, hasBytes, ruleStart } = this.grammar;
    const seen = new Set<number>();
    const ready: number[] = [];
    let complete = false;
    const todo = [...frames];
    while (todo.length > 0) {
      const frame = todo.pop()!;
      if (seen.has(frame)) continue;
      seen.add(frame);
      const state = this.frameState[frame]!;
      const parent = this.frameParent[frame]!;
      if (hasBytes[state]) ready.push(frame);
      if (accepting[state]) {
        if (parent === ROOT) complete = true;
        else todo.push(parent);
      }
      if (this.frameDepth[frame]! >= MAX_NESTING) continue;
      for (const [rule, next] of calls[state]!) todo.push(this.frame(ruleStart[rule]!, this.frame(next, parent)));
    }
    const distance = complete ? 0 : Math.min(...ready.map((frame) => this.frameDistance[frame]!));
    return { ready: Int32Array.from(ready), complete, distance, next: new Int32Array(256).fill(UNKNOWN) };
  }
}
