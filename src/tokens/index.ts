export { loadTokenizer, encodeText, TokenizerError, type LoadedTokenizer } from './tokenizer.js';
export { loadDataset, detectFormat, wikitextRows, jsonlRows, DatasetError, type DatasetFormat, type DatasetOptions, type LoadedDataset } from './dataset.js';
export { calibrationWindows, evaluationWindows, seededRandom, WindowError } from './windows.js';
export { tokenizeDataset, type TokenizedDataset } from './prepare.js';
