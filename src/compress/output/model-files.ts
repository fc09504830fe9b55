/**
 * The model directory's files that an output carries unchanged (tokenizer, chat templates,
 * generation config), found and copied.
 */
import { mkdir, readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { CHAT_TEMPLATE_DIR, CHAT_TEMPLATE_FILE_NAME, COPIED_FILES } from './names.js';

/**
 * The files of `dir` that are copied into an output (relative names): those of COPIED_FILES it
 * has, then its named chat templates, CHAT_TEMPLATE_DIR/<name>.jinja. Plain files only.
 */
export async function modelFilesToCopy(dir: string, names: readonly string[] = COPIED_FILES): Promise<string[]> {
  const found: string[] = [];
  const isFile = (name: string) => stat(path.join(dir, name)).then((s) => s.isFile(), () => false);
  for (const name of names) if (await isFile(name)) found.push(name);
  const templates = await readdir(path.join(dir, CHAT_TEMPLATE_DIR)).catch(() => [] as string[]);
  for (const name of templates.filter((n) => CHAT_TEMPLATE_FILE_NAME.test(n)).sort()) {
    const rel = `${CHAT_TEMPLATE_DIR}/${name}`;
    if (await isFile(rel)) found.push(rel);
  }
  return found;
}

/** Copies those of `names` that `modelDir` has (tokenizer files and chat templates by default); returns the ones copied. */
export async function copyModelFiles(modelDir: string, out: string, names: readonly string[] = COPIED_FILES): Promise<string[]> {
  const copied: string[] = [];
  for (const name of await modelFilesToCopy(modelDir, names)) {
    let bytes: Buffer;
    try {
      bytes = await readFile(path.join(modelDir, name));
    } catch {
      continue;
    }
    if (name.includes('/')) await mkdir(path.join(out, path.dirname(name)), { recursive: true });
    await writeFileAtomic(path.join(out, name), bytes);
    copied.push(name);
  }
  return copied;
}
