"""A service that reads `fs.get_multiplexed_model_id()` but has no `@fs.multiplexed` loader (and none is defined in
its module): the gateway does not look for model ids in its calls."""

import fnserve as fs


@fs.service(name="model-id-only", auth=False)
def model_id_only() -> dict[str, object]:
    return {}


@model_id_only.endpoint("/which")
def which() -> str:
    return fs.get_multiplexed_model_id()
