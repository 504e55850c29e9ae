"""tes-nextflow: a tes-core plugin that recognises tasks sent by Nextflow (the nf-ga4gh
plugin and the older built-in TES executor), tags them, and turns their Azure Blob
URLs (``az://...``, ``/<account>/<container>/...``) into blob URLs with a SAS."""

__version__ = "0.1.0"
