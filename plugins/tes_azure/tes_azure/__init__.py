"""tes-azure: Azure services for tes-core.

* :mod:`tes_azure.blobstorage`: the server's blob storage (``TES_STORAGE_*``),
  handed to the submitter plugins (``tes-cromwell``, ``tes-nextflow``) to sign
  SAS URLs and list blobs;
* :mod:`tes_azure.keyvault`: ``@Microsoft.KeyVault(...)`` references in any
  ``TES_*`` setting, resolved at start-up;
* :mod:`tes_azure.monitor`: OpenTelemetry traces and logs exported to Azure
  Monitor (install ``tes-azure[monitor]``).
"""

__version__ = "0.1.0"
