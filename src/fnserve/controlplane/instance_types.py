"""Named hardware presets a deployment may ask for instead of explicit resources."""

from __future__ import annotations

from fnserve.errors import ValidationFailed
from fnserve.spec import DeploymentSpec, Resources

INSTANCE_TYPES: dict[str, Resources] = {
    "cpu.small": Resources(num_cpus=1, memory="4GB"),
    "cpu.medium": Resources(num_cpus=2, memory="8GB"),
    "cpu.large": Resources(num_cpus=4, memory="16GB"),
    "gpu.1": Resources(num_cpus=8, memory="40GB", num_gpus=1),
    "gpu.2": Resources(num_cpus=16, memory="80GB", num_gpus=2),
}


def resolve_resources(spec: DeploymentSpec, default: Resources) -> Resources:
    """The resources a deployment's replicas get: its instance type's, its explicit ones, or the version's."""
    if spec.instance_type is not None:
        if spec.instance_type not in INSTANCE_TYPES:
            raise ValidationFailed(
                f"instance_type {spec.instance_type!r} is unknown; choose one of {', '.join(INSTANCE_TYPES)} "
                "(GET /v1/instance-types) or give explicit resources",
                details={"fields": [{"field": "instance_type", "message": "unknown instance type"}]},
            )
        resources = INSTANCE_TYPES[spec.instance_type]
    else:
        resources = spec.resources or default
    if spec.gpu is not None:
        resources = resources.model_copy(update={"gpu_type": spec.gpu, "num_gpus": max(resources.num_gpus, 1)})
    return resources
