"""Services whose initializer fails: one raises, one returns something other than a dict."""

import fnserve as fs


@fs.service(name="raises", auth=False)
def raises() -> dict[str, int]:
    raise RuntimeError("cannot load the model")


@fs.service(name="not_a_dict", auth=False)
def not_a_dict() -> list[int]:
    return [1, 2, 3]
