export * from './projection.js';
export { mixSeed, mulberry32 } from './prng.js';
