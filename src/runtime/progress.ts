/** Layer progress with an ETA on stderr (results go to stdout), one line per layer. */
import type { LayerProgress } from './layerwise.js';

export function stderrLayerProgress(label: string, enabled = true): (p: LayerProgress) => void {
  return (p) => {
    if (!enabled) return;
    const done = p.layer + 1;
    const etaMs = (p.elapsedMs / done) * (p.numLayers - done);
    process.stderr.write(`${label}: layer ${done}/${p.numLayers} (${(p.elapsedMs / 1000).toFixed(1)} s, ETA ${(etaMs / 1000).toFixed(1)} s)\n`);
  };
}
