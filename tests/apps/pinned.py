"""Services with environments of their own: one package pinned at two versions, a pin the runtime also uses
(pydantic 1), an import of a package that was not listed, and requirements no index can satisfy."""

from __future__ import annotations

from collections.abc import AsyncIterator

import fnserve as fs


@fs.service(requirements=["six==1.16.0"])
def six_old() -> dict[str, object]:
    return {}


@six_old.endpoint("/version", method="GET")
def six_old_version() -> str:
    import six

    return str(six.__version__)


@fs.service(requirements=["six==1.17.0"])
def six_new() -> dict[str, object]:
    return {}


@six_new.endpoint("/version", method="GET")
def six_new_version() -> str:
    import six

    return str(six.__version__)


@six_new.endpoint("/count", streaming=True)
async def six_new_count(up_to: int) -> AsyncIterator[str]:
    """Counts, streamed from an async generator.
    ---
    tags: [counting]
    """
    for number in range(1, up_to + 1):
        yield f"{number}\n"


@fs.service(requirements=["pydantic==1.10.*", "msgpack==1.0.2"])
def old_pins() -> dict[str, object]:
    return {}


@old_pins.endpoint("/versions")
def old_pins_versions(count: int) -> dict[str, object]:
    import msgpack
    import pydantic

    class Item(pydantic.BaseModel):
        count: int

    return {
        "pydantic": pydantic.VERSION,
        "msgpack": ".".join(str(part) for part in msgpack.version),
        "item": Item(count=count).dict(),
    }


@fs.service(requirements=["pydantic==2.10.6"])
def other_pydantic() -> dict[str, object]:
    return {}


@other_pydantic.endpoint("/versions")
def other_pydantic_versions(count: int) -> dict[str, object]:
    import pydantic
    import pydantic_core

    class Item(pydantic.BaseModel):
        count: int

    return {
        "pydantic": pydantic.VERSION,
        "pydantic_core": pydantic_core.__version__,
        "item": Item(count=count).model_dump_json(),
    }


@fs.service(requirements=["six==1.17.0"])
def unlisted() -> dict[str, object]:
    import httpx  # in the server's environment, not in this service's: must not be found

    return {"httpx": httpx}


@fs.service(requirements=["numpy==0.0.0"])
def unsatisfiable() -> dict[str, object]:
    return {}


@fs.service(requirements=["numpy==2.4.6"])
def numpy_version() -> dict[str, object]:
    return {}


@numpy_version.endpoint("/version", method="GET")
def numpy_version_version() -> str:
    import numpy

    return str(numpy.__version__)
