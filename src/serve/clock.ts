/**
 * Time source of the residency manager. The server uses the real monotonic clock; tests and the
 * policy simulations use `VirtualClock`, advanced explicitly, so Tyche's thresholds and every
 * policy's decisions can be checked to the millisecond without waiting.
 */
export interface Clock {
  /** milliseconds, monotonic */
  now(): number;
}

export const realClock: Clock = { now: () => performance.now() };

export class VirtualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`a clock cannot go back (advance by ${ms} ms)`);
    this.t += ms;
  }
  set(ms: number): void {
    if (ms < this.t) throw new RangeError(`a clock cannot go back (from ${this.t} to ${ms} ms)`);
    this.t = ms;
  }
}
