/**
 * A full garbage collection when the server falls idle after work. V8 collects when it needs
 * room, not when a process stops allocating, so after a burst an idle server can keep tens of MB
 * of dead activation buffers (and the RSS they pin) until the next request. Collecting once, a
 * moment after the last in-flight request ended, returns them; it costs a few milliseconds when
 * nobody is waiting.
 *
 * The collector is exposed by util/release-garbage.ts.
 */
export { exposeGc } from '../util/release-garbage.js';

/** Calls `gc` once `delayMs` after the count of busy requests last dropped to zero. */
export class IdleCollector {
  private busy = 0;
  private timer: NodeJS.Timeout | null = null;
  constructor(
    private readonly gc: () => void,
    private readonly delayMs = 1000,
  ) {}

  begin(): void {
    this.busy++;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  end(): void {
    this.busy -= 1;
    if (this.busy > 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      if (this.busy === 0) this.gc();
    }, this.delayMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
