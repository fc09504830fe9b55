/**
 * A read started ahead of its use (the next layer's or expert's weights while the current one
 * computes). A failure still reaches whoever awaits the promise; one that nobody awaits, because
 * the pass failed first, must not surface as an unhandled rejection, which would end the process.
 */
export function prefetch<T>(read: Promise<T>): Promise<T> {
  read.catch(() => undefined);
  return read;
}
