/** The residual projection's seeded generators (defined once for the project in src/util/prng.ts). */
export { mulberry32, mixSeed } from '../util/prng.js';
