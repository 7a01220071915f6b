"""virnucpro: find viral sequences in DNA FASTA files (the VirNucPro method, made fast)."""

import os as _os

__version__ = "0.1.0"

# MKL picks its CPU code path per call (by alignment among other things), so the same FP32
# embedding came out in one of two versions from run to run (about 1 run in 4 with the demo
# models). The fixed, "compatible" path makes CPU runs reproducible; it must be set before
# torch loads MKL, and spawned workers inherit it. GPUs are unaffected; a user's own setting wins.
_os.environ.setdefault("MKL_CBWR", "COMPATIBLE")
