"""What a run shows and writes for people: result tables, answers, summary, plot, live view, export.

- :mod:`.results`: the published result tables, per-frame scores and per-chunk calls;
- :mod:`.per_sequence`: the per-sequence answer (chunk score, virus_score, call) and its files;
- :mod:`.summary`: ``run_summary.json`` (also after a failure or an interrupt);
- :mod:`.plot`: ``virnucpro plot``;
- :mod:`.dashboard`: the live ``rich`` view (or plain progress lines), with
  :mod:`.gpu_monitor` (NVML sampling through nvitop);
- :mod:`.feature_export`: ``virnucpro features export``.

May import: :mod:`~virnucpro.pipeline.run` config, the stages' file formats
(:mod:`~virnucpro.pipeline.stages.work_files`, :mod:`~virnucpro.pipeline.stages.feature_files`),
the work queue's events; never a stage's body.
"""
