export { RoutingCounter, countRouting, combineObservers, type RoutingCounts, type LayerRoutingCounts } from './counter.js';
export { collectRoutingStats, collectRoutingCounts, type CollectOptions, type CalibrationInfo } from './collect.js';
export { modelFingerprint } from './fingerprint.js';
export { GramObserver, GramDirectorySink, loadGram, lazyLayerGrams, GRAM_MANIFEST, GRAM_WEIGHTINGS, type GramSink, type GramManifest, type GramWeighting } from './gram.js';
export {
  loadRoutingStats,
  writeRoutingStats,
  validateRoutingStats,
  routingStatsSchema,
  RoutingStatsError,
  ROUTING_STATS_FORMAT,
  ROUTING_STATS_VERSION,
  type RoutingStats,
  type LayerStats,
} from './schema.js';
export { checkStatsOutPath, checkGramsOutDir, StatsOutputError } from './output-path.js';
export { checkRoomForGrams, gramBytes } from './gram-room.js';
