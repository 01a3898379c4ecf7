"""Services that need GPUs (fake ones in tests, `Settings(fake_gpus=...)`), each answering with the environment its
replica was started with: which GPUs it sees, and its thread counts."""

import os
from typing import Any

import fnserve as fs

VARIABLES = ("CUDA_VISIBLE_DEVICES", "CUDA_DEVICE_ORDER", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "FNSERVE_REPLICA_ID")


def env_service(name: str, resources: fs.Resources) -> fs.Service[dict[str, int]]:
    """A service named `name` whose replicas need `resources`, with `GET /env`."""

    @fs.service(name=name, resources=resources, auth=False)
    def initializer() -> dict[str, int]:
        return {"pid": os.getpid()}

    @initializer.endpoint("/env", method="GET")
    def env(pid: int) -> dict[str, Any]:
        return {"pid": pid, **{variable: os.environ.get(variable) for variable in VARIABLES}}

    return initializer


gpu_a = env_service("gpu_a", fs.Resources(num_gpus=1, gpu_type="A100"))
gpu_b = env_service("gpu_b", fs.Resources(num_gpus=1, gpu_type="A100"))
gpu_c = env_service("gpu_c", fs.Resources(num_gpus=1, gpu_type="A100"))
half_a = env_service("half_a", fs.Resources(num_gpus=0.5))
half_b = env_service("half_b", fs.Resources(num_gpus=0.5))
any_gpu = env_service("any_gpu", fs.Resources(num_gpus=1))
no_gpu = env_service("no_gpu", fs.Resources(num_cpus=2))
four_gpus = env_service("four_gpus", fs.Resources(num_gpus=4, gpu_type="A100"))
h100 = env_service("h100", fs.Resources(num_gpus=1, gpu_type="H100"))
huge_memory = env_service("huge_memory", fs.Resources(memory="100TB"))


@fs.service(
    name="elastic_gpu",
    resources=fs.Resources(num_gpus=1),
    autoscaling=fs.Autoscaling(min_replicas=0, max_replicas=1, downscale_delay_s=60),
    auth=False,
)
def elastic_gpu() -> dict[str, int]:
    print("elastic_gpu initialized", flush=True)  # lands in the replica's log, wherever its worker was started
    return {"pid": os.getpid()}


@elastic_gpu.endpoint("/env", method="GET")
def elastic_env(pid: int) -> dict[str, Any]:
    return {"pid": pid, **{variable: os.environ.get(variable) for variable in VARIABLES}}
