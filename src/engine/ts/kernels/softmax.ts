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
