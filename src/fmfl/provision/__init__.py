"""Device provisioning and broker trust: a development CA, TLS, passwords, topic ACLs and revocation.

``provision(ProvisionSpec(...))`` creates a federation's credentials; ``revoke(out, device_id)`` takes a
device out. The threat model and the mapping onto EMQX and HiveMQ are in docs/security.md.
"""

from fmfl.provision.broker_conf import BrokerFiles, ListenerSpec
from fmfl.provision.layout import IdentityFiles, Layout
from fmfl.provision.provisioner import ProvisionError, ProvisionSpec, provision
from fmfl.provision.registry import DeviceRecord, DeviceStatus, Registry, RegistryError
from fmfl.provision.revocation import Revocation, revoke

__all__ = ["BrokerFiles", "DeviceRecord", "DeviceStatus", "IdentityFiles", "Layout", "ListenerSpec",
           "ProvisionError", "ProvisionSpec", "Registry", "RegistryError", "Revocation", "provision", "revoke"]
