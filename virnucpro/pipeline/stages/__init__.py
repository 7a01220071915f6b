"""The stages of ``virnucpro predict``, in run order (:mod:`virnucpro.pipeline.prediction` calls them).

1. translate (:mod:`.translate`): input -> shards of kept frames, with
   :mod:`.frames` (chunking and six frames over a FASTA stream), :mod:`.reuse`
   (which frames repeat an earlier one) and :mod:`.work_files` (the small work-file formats);
2. and 3. embed (:mod:`.embed`): each shard through DNABERT-S, then ESM-2, on the
   work queue; :mod:`.stream` runs translate on a thread so DNABERT-S embeds each
   shard as soon as it is written; the feature-file format is :mod:`.feature_files`;
4. score (:mod:`.score`, with :mod:`.score_pool` overlapping ESM-2): join both
   feature files by frame ID and classify;
5. assemble (:mod:`.assemble`): the result tables, in input order, walked on a
   thread from the start of ESM-2 as shards are scored (``AssemblyWalk``).

Each stage reuses a result only when its ``.done`` marker verifies
(:mod:`virnucpro.pipeline.checkpoint`) under the identity :class:`RunConfig` gives it.
May import: :mod:`~virnucpro.pipeline.run`, :mod:`~virnucpro.pipeline.report`
(table formats, summary), the work queue, models and sequence code.
"""
