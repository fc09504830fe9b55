/**
 * What `storage: 'dense'` (CLI `--format dense`) costs, said plainly: the run reports it as a
 * warning, on stderr and in the report, so nobody picks dense expecting a smaller model.
 */
export const DENSE_SAVES_NOTHING =
  'dense output saves no bytes: the experts are written back as full reconstructed matrices in the original shapes and dtype, ' +
  'so the checkpoint is as large on disk and in memory as the original (it exists only for loaders that cannot read factored experts); ' +
  'for the savings, use `storage` factored';
