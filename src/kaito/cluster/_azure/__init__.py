"""The AKS emulator for the in-process cluster: ARM agent pools, an Entra tenant, GPU Nodes.

The real ``azure-mgmt-containerservice`` client and the real ``azure-identity`` credentials talk
to it over TLS (a generated CA, in ``ca_file``); succeeded pools' Nodes join the cluster as AKS
labels them and get ``nvidia.com/gpu`` a moment later. See ``docs/provisioners.md``.
"""

from kaito.cluster._azure._emulator import AzureEmulator, AzureTimes, azure_emulator
from kaito.cluster._azure._entra import EntraTenant, FederatedCredential
from kaito.cluster._azure._faults import AzureFault, AzureFaults, FaultKind
from kaito.cluster._azure._vm import BootTimes

__all__ = (
    "AzureEmulator",
    "AzureFault",
    "AzureFaults",
    "AzureTimes",
    "BootTimes",
    "EntraTenant",
    "FaultKind",
    "FederatedCredential",
    "azure_emulator",
)
