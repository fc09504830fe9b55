export * from './effective-rank.js';
export * from './truncated.js';
