/**
 * model.safetensors.index.json of an output directory: every tensor of the given shards (names
 * sorted) and the total size of their data, as transformers' sharded loading reads it.
 */
import path from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { SafetensorsFile } from '../../io/safetensors-reader.js';
import { INDEX_FILE } from './names.js';

export async function writeIndex(out: string, files: string[]): Promise<void> {
  const weightMap: Record<string, string> = {};
  const entries: Array<[string, string]> = [];
  let totalSize = 0;
  for (const file of files) {
    const f = await SafetensorsFile.open(path.join(out, file));
    try {
      for (const name of f.tensorNames()) {
        entries.push([name, file]);
        totalSize += f.tensor(name)!.byteLength;
      }
    } finally {
      await f.close();
    }
  }
  entries.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (const [name, file] of entries) weightMap[name] = file;
  await writeFileAtomic(path.join(out, INDEX_FILE), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: weightMap }, null, 2) + '\n');
}
