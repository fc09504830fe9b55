/**
 * Softmax of a row segment in place (f64 normaliser, f32 results). With `sink` (an attention sink,
 * gpt-oss): a logit that joins the normaliser and is then dropped, so the row's weights sum to
 * less than 1 and a head can attend to nothing: row[j] = exp(row[j] − m) / (Σ_j exp(row[j] − m) +
 * exp(sink − m)) with m = max(max_j row[j], sink), the max including the sink so that a sink far
 * above the scores cannot overflow the normaliser; a NaN sink makes the row NaN, as in
 * transformers. Without one, the plain softmax's arithmetic exactly.
 */
export function softmaxInPlace(row: Float32Array, offset: number, length: number, sink?: number): void {
  let max = sink ?? -Infinity;
  for (let j = 0; j < length; j++) if (row[offset + j] > max) max = row[offset + j];
  let sum = 0;
  for (let j = 0; j < length; j++) {
    const e = Math.exp(row[offset + j] - max);
    row[offset + j] = e;
    sum += e;
  }
  if (sink !== undefined) sum += Math.exp(sink - max);
  const inv = 1 / sum;
  for (let j = 0; j < length; j++) row[offset + j] *= inv;
}
