/**
 * What the grammars of tool calls (tagged-json-prefix.ts, addressed-call-prefix.ts) share: their
 * specs compiled once and kept by their JSON text, so the same tools sent again (each turn of a
 * tool loop) find their compiled schemas; and the copying of a state's arguments.
 */
import type { GrammarState } from './grammar-constraint.js';

/** Compiled specs by their JSON text, the most recent `max` kept; each gets its own id, which its states' keys carry. */
export class CompiledSpecs<S, C> {
  private readonly kept = new Map<string, C>();
  private nextId = 0;

  constructor(
    /** compiles a spec (SchemaError where it is not one) */
    private readonly build: (spec: S, id: number) => C,
    private readonly max = 64,
  ) {}

  get(spec: S): C {
    const text = JSON.stringify(spec);
    let c = this.kept.get(text);
    if (c === undefined) {
      c = this.build(spec, this.nextId++);
      if (this.kept.size >= this.max) this.kept.delete(this.kept.keys().next().value!);
      this.kept.set(text, c);
    }
    return c;
  }
}

/** `theirs` (a call's arguments' state, or null) copied for a state that holds `mine`: into it where both are the same call's, else a clone. */
export function copyArguments(mine: GrammarState | null, theirs: GrammarState | null, sameCall: boolean): GrammarState | null {
  if (theirs === null) return null;
  return mine !== null && sameCall ? mine.copyFrom(theirs) : theirs.clone();
}
