"""tes-toil: a tes-core plugin that recognises the TES tasks of Toil's TES batch system and
tags them with the Toil job they run and the workflow's job store."""

__version__ = "0.1.0"
