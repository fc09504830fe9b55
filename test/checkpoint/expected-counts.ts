/**
 * Parameter counts computed straight from a config.json object with each family's own key names
 * and the published module shapes — written independently of src/checkpoint, so the library's
 * counts (which come from stored tensor shapes classified by its layout) are checked against an
 * outside derivation.
 */
type Raw = Record<string, unknown>;

const num = (raw: Raw, key: string): number => {
  const v = raw[key];
  if (typeof v !== 'number') throw new Error(`test config lacks numeric ${key}`);
  return v;
};

export interface IndependentCounts {
  moeLayers: number[];
  denseLayers: number[];
  numExperts: number;
  topK: number;
  expertWidth: number;
  total: number;
  experts: number;
  routedGateUp: number;
  routedDown: number;
  sharedExperts: number;
  routers: number;
  attention: number;
  denseMlp: number;
  embeddings: number;
  lmHead: number;
  norms: number;
}

export function independentCounts(raw: Raw): IndependentCounts {
  const type = raw.model_type as string;
  const H = num(raw, 'hidden_size');
  const V = num(raw, 'vocab_size');
  const L = num(raw, 'num_hidden_layers');
  const heads = num(raw, 'num_attention_heads');
  const kv = num(raw, 'num_key_value_heads');
  const tied = raw.tie_word_embeddings === true;

  let E: number;
  let I: number;
  let isMoe: (l: number) => boolean;
  let sharedPerLayer = 0;
  let denseWidth = 0;
  switch (type) {
    case 'mixtral':
      E = num(raw, 'num_local_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      break;
    case 'granitemoe':
    case 'minimax_m2':
      E = num(raw, 'num_local_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      break;
    case 'granitemoeshared':
    case 'granitemoe_swa':
      E = num(raw, 'num_local_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      // shared_mlp: input_linear [2S, H] (gate and up), output_linear [H, S]; none at S = 0
      sharedPerLayer = 3 * num(raw, 'shared_intermediate_size') * H;
      break;
    case 'phimoe':
    case 'gpt_oss':
      E = num(raw, 'num_local_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      break;
    case 'olmoe':
      E = num(raw, 'num_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      break;
    case 'qwen3_5_moe_text':
      // every layer MoE, a gated shared expert
      E = num(raw, 'num_experts');
      I = num(raw, 'moe_intermediate_size');
      isMoe = () => true;
      sharedPerLayer = 3 * num(raw, 'shared_expert_intermediate_size') * H + H;
      break;
    case 'qwen2_moe':
    case 'qwen3_moe':
    case 'qwen3_next':
    case 'qwen3_vl_moe_text': {
      E = num(raw, 'num_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const mlpOnly = raw.mlp_only_layers as number[];
      const step = num(raw, 'decoder_sparse_step');
      isMoe = (l) => !mlpOnly.includes(l) && (l + 1) % step === 0;
      if (type === 'qwen2_moe' || type === 'qwen3_next') {
        const S = num(raw, 'shared_expert_intermediate_size');
        sharedPerLayer = 3 * S * H + H; // gate, up, down + the [1, H] sigmoid gate
      }
      break;
    }
    case 'hunyuan_v1_moe':
      E = num(raw, 'num_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      sharedPerLayer = 3 * I * H; // the always-on shared MLP, the experts' width
      break;
    case 'ernie4_5_moe': {
      E = num(raw, 'moe_num_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const start = num(raw, 'moe_layer_start_index');
      const end = num(raw, 'moe_layer_end_index') === -1 ? L - 1 : num(raw, 'moe_layer_end_index');
      const interval = num(raw, 'moe_layer_interval');
      isMoe = (l) => (l + 1) % interval === 0 && l >= start && l <= end;
      sharedPerLayer = 3 * I * num(raw, 'moe_num_shared_experts') * H;
      break;
    }
    case 'glm4_moe_lite': {
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const types = (raw.mlp_layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => (l === 0 ? 'dense' : 'sparse'));
      isMoe = (l) => types[l] === 'sparse';
      sharedPerLayer = 3 * I * num(raw, 'n_shared_experts') * H;
      break;
    }
    case 'solar_open':
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      isMoe = () => true;
      sharedPerLayer = 3 * I * num(raw, 'n_shared_experts') * H;
      break;
    case 'flex_olmo': {
      E = num(raw, 'num_experts');
      I = num(raw, 'intermediate_size');
      isMoe = () => true;
      break;
    }
    case 'exaone_moe': {
      E = num(raw, 'num_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const k = num(raw, 'first_k_dense_replace');
      const types = (raw.mlp_layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => (l < k ? 'dense' : 'sparse'));
      isMoe = (l) => types[l] === 'sparse';
      sharedPerLayer = 3 * I * num(raw, 'num_shared_experts') * H;
      break;
    }
    case 'deepseek_v32':
    case 'glm_moe_dsa': {
      // DeepSeek-V3.2 and GLM-5: mlp_layer_types, else the first first_k_dense_replace layers dense
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const k = num(raw, 'first_k_dense_replace');
      const types = (raw.mlp_layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => (l < k ? 'dense' : 'sparse'));
      isMoe = (l) => types[l] === 'sparse';
      sharedPerLayer = 3 * I * num(raw, 'n_shared_experts') * H;
      break;
    }
    case 'deepseek':
    case 'deepseek_v2':
    case 'deepseek_v3': {
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const k = num(raw, 'first_k_dense_replace');
      const freq = num(raw, 'moe_layer_freq');
      isMoe = (l) => l >= k && l % freq === 0;
      sharedPerLayer = 3 * I * num(raw, 'n_shared_experts') * H;
      break;
    }
    case 'hy_v3': {
      E = num(raw, 'num_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const types = (raw.mlp_layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => (l === 0 ? 'dense' : 'sparse'));
      isMoe = (l) => types[l] === 'sparse';
      // no shared experts: transformers' HYV3MLP falls back to intermediate_size
      sharedPerLayer = 3 * (I * num(raw, 'num_shared_experts') || denseWidth) * H;
      break;
    }
    case 'afmoe': {
      E = num(raw, 'num_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const dense = num(raw, 'num_dense_layers');
      isMoe = (l) => l >= dense;
      // one shared MLP num_shared_experts × moe_intermediate_size wide
      sharedPerLayer = 3 * I * num(raw, 'num_shared_experts') * H;
      break;
    }
    case 'cohere2_moe': {
      // the experts are intermediate_size wide; the dense layers prefix_dense_intermediate_size, else as wide
      E = num(raw, 'num_experts');
      I = num(raw, 'intermediate_size');
      denseWidth = typeof raw.prefix_dense_intermediate_size === 'number' ? raw.prefix_dense_intermediate_size : I;
      const listed = raw.mlp_layer_types as string[] | null | undefined;
      const k = typeof raw.first_k_dense_replace === 'number' ? raw.first_k_dense_replace : 0;
      isMoe = (l) => (listed ? listed[l] === 'sparse' : l >= k);
      // the shared experts are one MLP num_shared_experts × intermediate_size wide
      sharedPerLayer = 3 * I * num(raw, 'num_shared_experts') * H;
      break;
    }
    case 'axk1':
    case 'mistral4': {
      // no moe_layer_freq: every layer from first_k_dense_replace on is MoE
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const k = num(raw, 'first_k_dense_replace');
      isMoe = (l) => l >= k;
      sharedPerLayer = 3 * I * num(raw, 'n_shared_experts') * H;
      break;
    }
    case 'glm4_moe':
    case 'glm4v_moe_text':
    case 'dots1': {
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const k = num(raw, 'first_k_dense_replace');
      isMoe = (l) => l >= k;
      sharedPerLayer = 3 * I * ((raw.n_shared_experts as number | null) ?? 0) * H;
      break;
    }
    case 'mimo_v2_flash': {
      // mlp_layer_types, else layer 0 dense; no shared experts
      E = num(raw, 'n_routed_experts');
      I = num(raw, 'moe_intermediate_size');
      denseWidth = num(raw, 'intermediate_size');
      const types = (raw.mlp_layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => (l === 0 ? 'dense' : 'sparse'));
      isMoe = (l) => types[l] === 'sparse';
      break;
    }
    case 'llama4_text': {
      E = num(raw, 'num_local_experts');
      I = num(raw, 'intermediate_size');
      denseWidth = num(raw, 'intermediate_size_mlp');
      // moe_layers, else every interleave_moe_layer_step-th layer from step − 1
      const listed = raw.moe_layers as number[] | null | undefined;
      const step = (raw.interleave_moe_layer_step as number | undefined) ?? 1;
      isMoe = (l) => (listed ? listed.includes(l) : (l + 1) % step === 0);
      // one shared expert of intermediate_size
      sharedPerLayer = 3 * I * H;
      break;
    }
    default:
      throw new Error(`no independent count formula for ${type}`);
  }

  let attentionPerLayer: number;
  // DeepSeek Sparse Attention's indexer (wq_b, wk, k_norm's weight and bias, weights_proj), in every layer of V3.2 and GLM-5's "full" ones
  let indexers = 0;
  if (type === 'deepseek_v32' || type === 'glm_moe_dsa') {
    const ih = num(raw, 'index_n_heads');
    const id = num(raw, 'index_head_dim');
    const full = type === 'glm_moe_dsa' && Array.isArray(raw.indexer_types) ? (raw.indexer_types as string[]).filter((t) => t === 'full').length : L;
    indexers = full * (ih * id * num(raw, 'q_lora_rank') + id * H + 2 * id + ih * H);
  }
  if (type === 'deepseek_v2' || type === 'deepseek_v3' || type === 'axk1' || type === 'glm4_moe_lite' || type === 'deepseek_v32' || type === 'glm_moe_dsa' || type === 'mistral4') {
    const nope = num(raw, 'qk_nope_head_dim');
    const rope = num(raw, 'qk_rope_head_dim');
    const vd = num(raw, 'v_head_dim');
    const kvr = num(raw, 'kv_lora_rank');
    const qr = raw.q_lora_rank as number | null;
    const q = qr === null ? heads * (nope + rope) * H : qr * H + qr + heads * (nope + rope) * qr;
    attentionPerLayer = q + (kvr + rope) * H + kvr + heads * (nope + vd) * kvr + H * heads * vd;
  } else if (type === 'mimo_v2_flash') {
    // per layer: sliding layers (layer_types, else all but layer 0 and every sixth) have 2·kv kv
    // heads and a sink per head; keys head_dim wide, values v_head_dim; optional q/k/v biases
    const hd = num(raw, 'head_dim');
    const vd = num(raw, 'v_head_dim');
    const types = (raw.layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => (l === 0 || (l + 1) % 6 === 0 ? 'full_attention' : 'sliding_attention'));
    const bias = raw.attention_bias === true;
    attentionPerLayer = 0;
    for (const t of types) {
      const kvl = t === 'sliding_attention' ? 2 * kv : kv;
      attentionPerLayer += heads * hd * H + kvl * hd * H + kvl * vd * H + H * heads * vd + (bias ? heads * hd + kvl * hd + kvl * vd : 0) + (t === 'sliding_attention' ? heads : 0);
    }
    // summed over the layers above: the total is attentionPerLayer · L, so divide back
    attentionPerLayer /= L;
  } else {
    const hd = typeof raw.head_dim === 'number' ? raw.head_dim : H / heads;
    attentionPerLayer = 2 * heads * hd * H + 2 * kv * hd * H;
    if (type === 'qwen2_moe') attentionPerLayer += heads * hd + 2 * kv * hd; // q/k/v biases
    if (type === 'qwen3_moe' || type === 'qwen3_vl_moe_text' || type === 'exaone_moe' || type === 'hy_v3') attentionPerLayer += 2 * hd; // per-head q/k norms
    if (type === 'olmoe' || type === 'minimax_m2' || type === 'flex_olmo') attentionPerLayer += heads * hd + kv * hd; // whole-projection q/k norms
    if (type === 'solar_open' && raw.attention_bias === true) attentionPerLayer += heads * hd + 2 * kv * hd; // q/k/v biases
    if (type === 'glm4_moe' || type === 'glm4v_moe_text') attentionPerLayer += (raw.attention_bias === true ? heads * hd + 2 * kv * hd : 0) + (raw.use_qk_norm === true ? 2 * hd : 0);
    if (type === 'hunyuan_v1_moe') attentionPerLayer += 2 * hd; // per-head q/k norms
    if (type === 'gpt_oss') attentionPerLayer += heads * hd + 2 * kv * hd + H + heads; // q/k/v/o biases, one sink per head
    if (type === 'granitemoe_swa') attentionPerLayer += heads; // one sink per head
    if (type === 'afmoe') attentionPerLayer += 2 * hd + heads * hd * H; // per-head q/k norms, gate_proj [heads·hd, H]
    if (type === 'phimoe' && raw.attention_bias === true) attentionPerLayer += heads * hd + 2 * kv * hd + H; // q/k/v/o biases
    if (type === 'cohere2_moe' && raw.attention_bias === true) attentionPerLayer += heads * hd + 2 * kv * hd + H; // q/k/v/o biases
    if (type === 'qwen3_next' || type === 'qwen3_5_moe_text') {
      // (Qwen3.5's four input projections hold what Qwen3-Next's two grouped ones do)
      // full-attention layers: q_proj [2·heads·hd, H] (query and gate), k/v, o, per-head q/k norms;
      // Gated DeltaNet layers: in_proj_qkvz, in_proj_ba, conv1d [2·Kh·dk + Vh·dv, 1, kernel], dt_bias, A_log, norm [dv], out_proj
      const interval = (raw.full_attention_interval as number | undefined) ?? 4;
      const types = (raw.layer_types as string[] | undefined) ?? Array.from({ length: L }, (_, l) => ((l + 1) % interval === 0 ? 'full_attention' : 'linear_attention'));
      const full = 3 * heads * hd * H + 2 * kv * hd * H + 2 * hd;
      const kd = num(raw, 'linear_num_key_heads') * num(raw, 'linear_key_head_dim');
      const vh = num(raw, 'linear_num_value_heads');
      const vdim = num(raw, 'linear_value_head_dim');
      const linear = (2 * kd + 2 * vh * vdim) * H + 2 * vh * H + (2 * kd + vh * vdim) * num(raw, 'linear_conv_kernel_dim') + 2 * vh + vdim + H * vh * vdim;
      const nFull = types.filter((t) => t === 'full_attention').length;
      // counted once per layer below
      attentionPerLayer = (nFull * full + (L - nFull) * linear) / L;
    }
    if (type === 'dots1') attentionPerLayer += (raw.attention_bias === true ? heads * hd + 2 * kv * hd : 0) + 2 * hd; // per-head q/k norms always
  }

  const moeLayers = Array.from({ length: L }, (_, l) => l).filter(isMoe);
  const denseLayers = Array.from({ length: L }, (_, l) => l).filter((l) => !isMoe(l));
  const nMoe = moeLayers.length;
  const c = {
    // gpt-oss's experts carry biases: gate_up [E, 2I], down [E, H]
    routedGateUp: nMoe * E * 2 * I * (H + (type === 'gpt_oss' ? 1 : 0)),
    routedDown: nMoe * E * H * (I + (type === 'gpt_oss' ? 1 : 0)),
    sharedExperts: nMoe * sharedPerLayer,
    // DeepSeek-V3's, GLM-4.5's, MiniMax-M2's and dots.llm1's routers add an e_score_correction_bias [E], gpt-oss's its logits' bias [E]
    routers: nMoe * E * (H + (type === 'deepseek_v3' || type === 'glm4_moe' || type === 'glm4v_moe_text' || type === 'minimax_m2' || type === 'dots1' || type === 'glm4_moe_lite' || type === 'deepseek_v32' || type === 'glm_moe_dsa' || type === 'exaone_moe' || type === 'ernie4_5_moe' || type === 'gpt_oss' || type === 'solar_open' || type === 'axk1' || type === 'hy_v3' || type === 'afmoe' || type === 'mimo_v2_flash' ? 1 : 0)),
    attention: L * attentionPerLayer + indexers,
    denseMlp: denseLayers.length * 3 * denseWidth * H,
    embeddings: V * H,
    // PhiMoE's lm_head_bias adds [V]
    lmHead: (tied ? 0 : V * H) + (raw.lm_head_bias === true ? V : 0),
    // A.X K1 adds a norm on each MoE layer's output; AFMoE has four a layer (before and after each sublayer); Cohere2-MoE one (its parallel block)
    // PhiMoE's LayerNorms carry a bias beside each weight
    norms: ((type === 'afmoe' ? 4 * L : type === 'cohere2_moe' ? L : 2 * L) + 1 + (type === 'axk1' ? nMoe : 0)) * H * (type === 'phimoe' ? 2 : 1),
  };
  const total = Object.values(c).reduce((a, b) => a + b, 0);
  return {
    moeLayers,
    denseLayers,
    numExperts: E,
    topK: type === 'ernie4_5_moe' ? num(raw, 'moe_k') : type === 'hunyuan_v1_moe' ? num(raw, 'moe_topk') : num(raw, 'num_experts_per_tok'),
    expertWidth: I,
    total,
    experts: c.routedGateUp + c.routedDown,
    ...c,
  };
}
