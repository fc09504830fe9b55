/** A model loader for residency tests on a virtual clock: every model is 100 bytes, loads and unloads are logged. */
import type { ModelLoader } from '../../src/serve/residency.js';

export class FakeLoader implements ModelLoader<string> {
  log: string[] = [];
  async load(id: string) {
    this.log.push(`load ${id}`);
    return { handle: id, bytes: 100 };
  }
  async unload(id: string) {
    this.log.push(`unload ${id}`);
  }
}
