/** Softmax of a row segment in place (f64 normaliser, f32 results). */
export function softmaxInPlace(row: Float32Array, offset: number, length: number): void {
  let max = -Infinity;
  for (let j = 0; j < length; j++) if (row[offset + j] > max) max = row[offset + j];
  let sum = 0;
  for (let j = 0; j < length; j++) {
    const e = Math.exp(row[offset + j] - max);
    row[offset + j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < length; j++) row[offset + j] *= inv;
}

/**
 * Softmax of a row segment in place with an attention sink (gpt-oss): a learned logit that joins
 * the normaliser and is then dropped, so the row's weights sum to less than 1 and a head can
 * attend to nothing. row[j] = exp(row[j] − m) / (Σ_j exp(row[j] − m) + exp(sink − m)) with
 * m = max(max_j row[j], sink): the max includes the sink so that a sink far above the scores
 * cannot overflow the normaliser. Same f64 normaliser and f32 results as softmaxInPlace; a NaN
 * sink makes the row NaN, as it does in transformers.
 */
export function softmaxWithSinkInPlace(row: Float32Array, offset: number, length: number, sink: number): void {
  let max = sink;
  for (let j = 0; j < length; j++) if (row[offset + j] > max) max = row[offset + j];
  let sum = 0;
  for (let j = 0; j < length; j++) {
    const e = Math.exp(row[offset + j] - max);
    row[offset + j] = e;
    sum += e;
  }
  sum += Math.exp(sink - max);
  const inv = 1 / sum;
  for (let j = 0; j < length; j++) row[offset + j] *= inv;
}
