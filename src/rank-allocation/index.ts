export * from './budget.js';
export * from './fuse.js';
export * from './allocate.js';
export * from './waterfill.js';
