"""Device provisioning and broker trust: a development CA, TLS, passwords, topic ACLs and revocation.

``provision(ProvisionSpec(...))`` creates a federation's credentials; ``revoke(out, device_id)`` takes a
device out. The threat model and the mapping onto EMQX and HiveMQ are in docs/security.md.
"""

# Exports load on first use (PEP 562): the CLI imports this package to register its subcommand, and
# ``fmfl --help`` or ``fmfl client`` on a device must not pay for numpy, sqlite or cryptography here.
from importlib import import_module
from typing import Any

_EXPORTS: dict[str, str] = {
    "BrokerFiles": "fmfl.provision.broker_conf",
    "DeviceRecord": "fmfl.provision.registry",
    "DeviceStatus": "fmfl.provision.registry",
    "IdentityFiles": "fmfl.provision.layout",
    "Layout": "fmfl.provision.layout",
    "ListenerSpec": "fmfl.provision.broker_conf",
    "ProvisionError": "fmfl.provision.provisioner",
    "ProvisionSpec": "fmfl.provision.provisioner",
    "Registry": "fmfl.provision.registry",
    "RegistryError": "fmfl.provision.registry",
    "Revocation": "fmfl.provision.revocation",
    "provision": "fmfl.provision.provisioner",
    "revoke": "fmfl.provision.revocation",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
