"""Beyond one machine: split an input into parts, run each part anywhere, merge the results.

* :mod:`virnucpro.cluster.split` writes N gzip FASTA parts and ``manifest.json``.
* Each part is an ordinary ``virnucpro predict`` run.
* :mod:`virnucpro.cluster.merge` joins the part runs into the tables a single run writes.
* :mod:`virnucpro.cluster.slurm` and :mod:`virnucpro.cluster.snakemake` write (and
  for SLURM submit) the jobs that do the three steps on a cluster.
"""
