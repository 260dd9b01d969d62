"""The ``aks`` backend: AKS agent pools through ``azure-mgmt-containerservice`` and
``azure-identity`` (``--node-provisioner aks``). Needs the ``azure`` extra."""

from kaito_provisioners.aks._provisioner import AksProvisioner
from kaito_provisioners.aks._settings import AksSettings

__all__ = ("AksProvisioner", "AksSettings")
