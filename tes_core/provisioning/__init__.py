"""Provisioning: ``POST /provision`` creates the cloud resources a backend needs.

:mod:`.base` is what a backend plugin implements (hook ``tes_provisioner``),
:mod:`.store` the table of requests, :mod:`.service` the API's and the workers' side.
"""
