"""Every file a ``predict`` run writes, named in one place.

The resume logic, the final assembly and the run summary all take their paths
from :class:`RunPaths`, so a file name is never spelled twice.

Layout of an output directory::

    DIR/
      prediction_results.txt              per kept frame (published format)
      prediction_results_highestscore.csv per chunk (published format, tab-separated)
      contig_summary.tsv                  per input sequence (with virus_score and call)
      chunk_scores.tsv                    per chunk: position, kept frames, chunk score
      viral_contigs.fa                    the sequences called virus, as in the input
      viral_regions.tsv / .bed / .gff3    runs of virus chunks inside sequences (report/regions.py)
      virnucpro_mqc.json                  MultiQC custom content: bar plot of the calls (report/multiqc.py)
      virnucpro_generalstats_mqc.json     MultiQC custom content: the run's General Statistics row
      run_summary.json                    counts, timings, devices, versions
      run.json                            parameters that change numbers (resume check)
      virnucpro.log                       full debug log of every run in DIR
      NOTICE.txt                          only with --models demo: the scores mean nothing
      plots.pdf                           ``virnucpro plot DIR`` (default name)
      features/{dnabert,esm}_*            ``virnucpro features export DIR`` (default place)
      .virnucpro.lock                     held while a run uses DIR (checkpoint.output_dir_lock)
      work/
        translate.json (+ .done)          the shard index: frames per shard, counts
        contigs.tsv                       per input sequence: length, chunks, chunks with frames
        shards/shard-00001.dna.fa         kept frames' nucleotides   } same IDs,
        shards/shard-00001.protein.faa    kept frames' proteins      } same order
        shards/shard-00001.{dnabert,esm}.reuse.tsv  frames reusing an identical earlier frame's embedding
        features/KEPT                     written by a --keep-features run: later runs keep these files
        features/shard-00001.dnabert.safetensors (+ .done)
        features/shard-00001.esm.safetensors     (+ .done)
        scores/shard-00001.tsv                   (+ .done)
        assembly/run-00001.chunks.tsv     runs of chunk calls sorted by ID (during assembly only)

Formats of the work files are owned by :mod:`virnucpro.pipeline.stages.work_files`
(contigs, shard index, sorted chunk calls), :mod:`virnucpro.pipeline.stages.feature_files`
(feature files) and :mod:`virnucpro.pipeline.report.results` (score files, result tables).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PREDICTIONS_NAME = "prediction_results.txt"
HIGHEST_SCORE_NAME = "prediction_results_highestscore.csv"
CONTIG_SUMMARY_NAME = "contig_summary.tsv"
CHUNK_SCORES_NAME = "chunk_scores.tsv"
VIRAL_FASTA_NAME = "viral_contigs.fa"
REGIONS_TSV_NAME = "viral_regions.tsv"
REGIONS_BED_NAME = "viral_regions.bed"
REGIONS_GFF_NAME = "viral_regions.gff3"
MULTIQC_NAME = "virnucpro_mqc.json"
MULTIQC_GENERAL_STATS_NAME = "virnucpro_generalstats_mqc.json"
RUN_SUMMARY_NAME = "run_summary.json"
RUN_JSON_NAME = "run.json"
LOG_NAME = "virnucpro.log"
NOTICE_NAME = "NOTICE.txt"
PLOTS_NAME = "plots.pdf"
LOCK_NAME = ".virnucpro.lock"
WORK_NAME = "work"
EXPORT_DIR_NAME = "features"
KEPT_MARKER_NAME = "KEPT"
#: What ``virnucpro features export DIR`` writes into DIR/features/ (per model kind).
EXPORT_FILE_PATTERNS = ("{model}_embeddings.npy", "{model}_ids.txt", "{model}_embeddings.tsv")


@dataclass(frozen=True)
class RunPaths:
    """Paths of one ``predict`` output directory."""

    root: Path

    @property
    def predictions(self) -> Path:
        return self.root / PREDICTIONS_NAME

    @property
    def highest_score(self) -> Path:
        return self.root / HIGHEST_SCORE_NAME

    @property
    def contig_summary(self) -> Path:
        return self.root / CONTIG_SUMMARY_NAME

    @property
    def chunk_scores(self) -> Path:
        return self.root / CHUNK_SCORES_NAME

    @property
    def viral_fasta(self) -> Path:
        return self.root / VIRAL_FASTA_NAME

    @property
    def regions_tsv(self) -> Path:
        return self.root / REGIONS_TSV_NAME

    @property
    def regions_bed(self) -> Path:
        return self.root / REGIONS_BED_NAME

    @property
    def regions_gff(self) -> Path:
        return self.root / REGIONS_GFF_NAME

    @property
    def multiqc(self) -> Path:
        """MultiQC custom content (the ``_mqc.json`` suffix is what MultiQC looks for)."""
        return self.root / MULTIQC_NAME

    @property
    def multiqc_general_stats(self) -> Path:
        """MultiQC custom content for the General Statistics table (one file makes one thing)."""
        return self.root / MULTIQC_GENERAL_STATS_NAME

    @property
    def run_summary(self) -> Path:
        return self.root / RUN_SUMMARY_NAME

    @property
    def run_json(self) -> Path:
        return self.root / RUN_JSON_NAME

    @property
    def log(self) -> Path:
        return self.root / LOG_NAME

    @property
    def notice(self) -> Path:
        return self.root / NOTICE_NAME

    @property
    def plots(self) -> Path:
        """Default output of ``virnucpro plot``."""
        return self.root / PLOTS_NAME

    @property
    def work(self) -> Path:
        return self.root / WORK_NAME

    @property
    def kept_features_marker(self) -> Path:
        """Present when a ``--keep-features`` run asked for the feature files to stay."""
        return self.features_dir / KEPT_MARKER_NAME

    @property
    def export_dir(self) -> Path:
        """Default output directory of ``virnucpro features export DIR``."""
        return self.root / EXPORT_DIR_NAME

    @property
    def shards_dir(self) -> Path:
        return self.work / "shards"

    @property
    def features_dir(self) -> Path:
        return self.work / "features"

    @property
    def scores_dir(self) -> Path:
        return self.work / "scores"

    @property
    def assembly_dir(self) -> Path:
        return self.work / "assembly"

    @property
    def translate_index(self) -> Path:
        return self.work / "translate.json"

    @property
    def contigs_table(self) -> Path:
        return self.work / "contigs.tsv"

    def shard_dna(self, shard: int) -> Path:
        return self.shards_dir / f"{shard_name(shard)}.dna.fa"

    def shard_protein(self, shard: int) -> Path:
        return self.shards_dir / f"{shard_name(shard)}.protein.faa"

    def shard_reuse(self, kind: str, shard: int) -> Path:
        """The reuse plan of model kind ``kind`` for ``shard`` (see :mod:`virnucpro.pipeline.stages.reuse`)."""
        return self.shards_dir / f"{shard_name(shard)}.{kind}.reuse.tsv"

    def dnabert_features(self, shard: int) -> Path:
        return self.features_dir / f"{shard_name(shard)}.dnabert.safetensors"

    def esm_features(self, shard: int) -> Path:
        return self.features_dir / f"{shard_name(shard)}.esm.safetensors"

    def shard_scores(self, shard: int) -> Path:
        return self.scores_dir / f"{shard_name(shard)}.tsv"

    def sorted_chunk_calls(self, run: int) -> Path:
        """Run ``run`` of chunk calls sorted by ID (assembly's external sort)."""
        return self.assembly_dir / f"run-{run:05d}.chunks.tsv"

    def final_outputs(self) -> list[Path]:
        """The result files a finished run leaves for the user."""
        return [self.predictions, self.highest_score, self.contig_summary, self.chunk_scores, self.viral_fasta,
                self.regions_tsv, self.regions_bed, self.regions_gff, self.run_summary, self.multiqc,
                self.multiqc_general_stats]

    def state_paths(self) -> list[Path]:
        """Everything a run creates that ``--force`` may delete (never other user files)."""
        return [self.work, self.run_json, *self.final_outputs(), self.notice]

    def state_names(self) -> list[str]:
        """:meth:`state_paths` as names inside :attr:`root` (what ``checkpoint.wipe_run_state`` takes)."""
        return [p.name for p in self.state_paths()]

    def derived_names(self, models: tuple[str, ...]) -> list[str]:
        """Files other commands derive from a run's results inside :attr:`root` (relative paths):
        ``--force`` removes these files one by one (never their directory's other files)."""
        return [f"{EXPORT_DIR_NAME}/{pattern.format(model=model)}"
                for model in models for pattern in EXPORT_FILE_PATTERNS]


def shard_name(shard: int) -> str:
    """``shard-00001`` for shard 1 (1-based, zero-padded so names sort in order)."""
    return f"shard-{shard:05d}"
