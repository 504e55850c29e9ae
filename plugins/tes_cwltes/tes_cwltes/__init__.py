"""tes-cwltes: a tes-core plugin that recognises the TES tasks of cwl-tes (the CWL runner
built on cwltool) and tags them with the CWL step they run."""

__version__ = "0.1.0"
