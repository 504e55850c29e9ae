"""tes-slurm: a tes-core compute backend that runs each TES task as a Slurm batch job.

See README.md for the settings and how to debug a job by hand.
"""

__version__ = "0.1.0"
