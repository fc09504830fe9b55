#pragma once

namespace rfid {

/**
 * The causal softmax of `blocks` stacked rows×cols score blocks in place (what causalSoftmax does
 * after checking its arguments): row i is the query at position past + i and keeps key columns
 * max(0, past + i − window + 1)..past + i (window 0: from 0); the rest become exact zeros.
 */
void CausalSoftmaxBlocks(int blocks, int rows, int cols, int past, int window, float* scores);

}  // namespace rfid
