/** Dataset file + tokenizer → token ids, the step `calibrate` and `eval` share. */
import { loadDataset, type DatasetOptions, type LoadedDataset } from './dataset.js';
import { encodeText, loadTokenizer } from './tokenizer.js';

export interface TokenizedDataset {
  dataset: Omit<LoadedDataset, 'text'>;
  tokenizerPath: string;
  ids: Int32Array;
}

/**
 * @param tokenizerLocation the model directory (its tokenizer.json) or an explicit tokenizer.json
 */
export async function tokenizeDataset(tokenizerLocation: string, datasetFile: string, opts: DatasetOptions = {}): Promise<TokenizedDataset> {
  const tokenizer = await loadTokenizer(tokenizerLocation);
  const { text, ...dataset } = await loadDataset(datasetFile, opts);
  return { dataset, tokenizerPath: tokenizer.path, ids: encodeText(tokenizer, text) };
}
