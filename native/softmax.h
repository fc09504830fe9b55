#pragma once

namespace rfid {

/**
 * The causal softmax of `blocks` stacked rows×cols score blocks in place (what causalSoftmax does
 * after checking its arguments): row i is the query at position past + i and keeps key columns
 * max(0, past + i − window + 1)..past + i (window 0: from 0); the rest become exact zeros.
 * With `sinks` (one logit per block: attention sinks, gpt-oss), exp(sinks[b] − m) joins the
 * normaliser of every row of block b and m is the max of the kept scores and the sink; nullptr:
 * none, the plain softmax unchanged.
 */
void CausalSoftmaxBlocks(int blocks, int rows, int cols, int past, int window, float* scores, const float* sinks = nullptr);

}  // namespace rfid
