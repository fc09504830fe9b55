/**
 * The KV cache's side of linear attention (linear-attention.ts): each sequence of the batch
 * continues its slot's state of the layer being run, and leaves it there for the slot's next
 * positions (KvCache.linearState).
 */
import type { AttentionContext } from './attention.js';
import type { LinearStateStore } from './linear-attention.js';

export function cachedLinearStates(kv: NonNullable<AttentionContext['kv']>): LinearStateStore {
  const { cache, layer, slots } = kv;
  const slotOf = (s: number) => (slots ? slots[s] : s);
  return {
    read: (s) => cache.linearState(slotOf(s), layer),
    write: (s, state) => cache.setLinearState(slotOf(s), layer, state),
  };
}
