"""virnucpro: find viral sequences in DNA FASTA files (the VirNucPro method, made fast)."""

__version__ = "0.1.0"
