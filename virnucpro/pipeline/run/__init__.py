"""The run's own decisions, made once in the parent before any stage starts.

- :mod:`.options`: :class:`PredictOptions`, what the user asked for;
- :mod:`.checks`: options and the whole input checked before anything is removed or loaded;
- :mod:`.setup`: which model files, devices, precision, shard size and tail split (the last shards cut smaller);
- :mod:`.config`: :class:`RunConfig`, what ``run.json`` stores and every stage identity;
- :mod:`.stop`: SIGINT/SIGTERM over the whole run, checked at every stage boundary.

May import: :mod:`virnucpro.models`, :mod:`virnucpro.io`, :mod:`virnucpro.sequence`,
the pipeline's :mod:`~virnucpro.pipeline.outputs` and :mod:`~virnucpro.pipeline.model_kinds`,
the work queue's signal handling; never a stage.
"""
