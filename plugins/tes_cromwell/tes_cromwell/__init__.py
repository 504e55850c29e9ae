"""tes-cromwell: Cromwell support for tes-core, as submitter hooks.

* :mod:`tes_cromwell.detect` recognises Cromwell's tasks and where they belong;
* :mod:`tes_cromwell.locate` and :mod:`tes_cromwell.rewrite` point their files at
  the server's blob storage with SAS tokens;
* :mod:`tes_cromwell.inject` adds the files Cromwell wrote next to the script but
  did not list (the ``write_tsv`` workaround);
* :mod:`tes_cromwell.plugin` is the entry point: the hook implementations.
"""

__version__ = "0.1.0"
