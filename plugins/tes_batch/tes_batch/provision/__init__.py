"""``POST /provision`` for Azure Batch (hook ``tes_provisioner``).

Creates, with the server's own Azure credential (``DefaultAzureCredential``: managed
identity, workload identity, environment...), a resource group, a storage account with
the Azure Files share behind ``/tes-wd/shared-global``, a Batch account linked to that
storage account, and optionally Key Vault secrets holding the two accounts' keys; it
reports the settings the server then needs, keys as Key Vault references.

:mod:`.request` checks the request, :mod:`.clients` builds the azure-mgmt clients,
:mod:`.steps` holds one idempotent function per resource, :mod:`.provisioner` ties them
to the core's ``Provisioner`` interface and :mod:`.plugin` is the hook.
"""
