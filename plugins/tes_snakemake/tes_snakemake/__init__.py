"""tes-snakemake: a tes-core plugin that recognises the TES tasks of Snakemake's TES
executor (built into Snakemake up to 7.x, ``snakemake-executor-plugin-tes`` from 8) and
tags them with the job's rule and the workflow's working directory."""

__version__ = "0.1.0"
