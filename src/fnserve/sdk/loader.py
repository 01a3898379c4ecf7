"""Finding a service in user code: `app.py:greeter`, `package.module:greeter`, or a pickled blob."""

from __future__ import annotations

import importlib
import importlib.util
import io
import pickle
import sys
import threading
import types
from pathlib import Path
from typing import Any

import cloudpickle
import orjson

from fnserve.apps.load import app_kind
from fnserve.errors import SpecError
from fnserve.sdk.apps import APP_ATTRIBUTE, app_object
from fnserve.sdk.service import Service


def split_target(target: str) -> tuple[str, str | None]:
    """`"app.py:greeter"` → `("app.py", "greeter")`; the object part is optional."""
    location, _, attribute = target.partition(":")
    if not location:
        raise SpecError(f"target {target!r} names no module; write it as 'app.py:service' or 'package.module:service'")
    return location, attribute or None


def module_name_for(path: Path, root: Path) -> str:
    """The dotted module name of a .py file relative to the project root."""
    relative = path.resolve().relative_to(root.resolve()).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_importing = threading.local()


def importing_user_code() -> bool:
    """True while fnserve imports a user's module (a deploy reading it, a replica loading it): then `svc.run()` at the
    bottom of that file does nothing, or every import of it would start a server."""
    return getattr(_importing, "depth", 0) > 0


def import_module_from(root: Path, module_name: str) -> Any:
    """Import `module_name` with `root` first on sys.path (the project folder)."""
    root_text = str(root.resolve())
    if root_text not in sys.path:
        sys.path.insert(0, root_text)
    importlib.invalidate_caches()
    _importing.depth = getattr(_importing, "depth", 0) + 1
    try:
        return importlib.import_module(module_name)
    finally:
        _importing.depth -= 1


def pick_service(module: Any, attribute: str | None, *, where: str) -> Service[Any]:
    """The service named `attribute` in `module`, or its only service when no name is given. An ASGI or WSGI app
    (`app.py:app`) is served whole, as `fs.asgi_service(app, name=attribute)` would (sdk/apps.py)."""
    if attribute is not None:
        if not hasattr(module, attribute):
            raise SpecError(f"{where} has no attribute {attribute!r}; check the name after ':'")
        found = getattr(module, attribute)
        if not isinstance(found, Service):
            if app_kind(found) is not None:
                return _app_service(found, attribute, module)
            raise SpecError(
                f"{where}:{attribute} is not a service; decorate it with @fs.service, or name an ASGI or WSGI app"
            )
        return found
    services = {name: value for name, value in vars(module).items() if isinstance(value, Service)}
    if len(services) == 1:
        return next(iter(services.values()))
    if not services:
        apps = {name: value for name, value in vars(module).items() if app_object(value)}
        if len(apps) == 1:
            name, app = next(iter(apps.items()))
            return _app_service(app, name, module)
        raise SpecError(f"{where} defines no @fs.service; decorate a function or class with @fs.service")
    raise SpecError(f"{where} defines several services ({', '.join(sorted(services))}); name one, e.g. {where}:NAME")


def _app_service(app: Any, attribute: str, module: Any) -> Service[Any]:
    """A module's app as a service named after its attribute (an `app.py:app` target)."""
    from fnserve.sdk.apps import asgi_service

    try:
        service = asgi_service(app, name=attribute)
    except SpecError as exc:
        raise SpecError(f"{module.__name__}:{attribute}: {exc.message}") from None
    service.__module__ = service.initializer.__module__ = module.__name__
    return service


def load_target(target: str, *, root: Path | None = None) -> tuple[Service[Any], Path, str]:
    """Load a service from a target as a user types it.

    Returns the service, the project root (the file's folder, or `root`) and the entrypoint
    `module:attribute` that a replica uses to import it from that root.
    """
    location, attribute = split_target(target)
    if location.endswith(".py") or "/" in location or Path(location).is_file():
        path = Path(location)
        if not path.is_file():
            raise SpecError(f"file {location!r} does not exist; give the path of the .py file that defines the service")
        project_root = root or path.resolve().parent
        module_name = module_name_for(path, project_root)
    else:
        project_root = root or Path.cwd()
        module_name = location
    module = import_module_from(project_root, module_name)
    service = pick_service(module, attribute, where=location)
    entrypoint = f"{module_name}:{_attribute_of(module, service)}"
    return service, project_root, entrypoint


def _attribute_of(module: Any, service: Service[Any]) -> str:
    app = getattr(service, APP_ATTRIBUTE, None)
    for name, value in vars(module).items():
        if value is service or (app is not None and value is app):
            return str(name)
    raise SpecError(f"service {service.name!r} is not a top-level name of {module.__name__}")


def load_entrypoint(code_dir: Path, entrypoint: str) -> Service[Any]:
    """What a replica does with an uploaded project: import `module:attribute` from `code_dir`."""
    module_name, attribute = split_target(entrypoint)
    module = import_module_from(code_dir, module_name)
    return pick_service(module, attribute, where=module_name)


def dumps_by_value(obj: Any, *, module_name: str | None) -> bytes:
    """cloudpickle `obj` with its defining module pickled by value, so replicas need no copy of it."""
    module = sys.modules.get(module_name) if module_name else None
    by_value = module is not None and module_name != "__main__" and not _is_installed(module)
    if by_value:
        cloudpickle.register_pickle_by_value(module)
    try:
        buffer = io.BytesIO()
        _NamedCodePickler(buffer).dump(obj)
        return buffer.getvalue()
    finally:
        if by_value:
            cloudpickle.unregister_pickle_by_value(module)


class _NamedCodePickler(cloudpickle.Pickler):  # type: ignore[misc]
    """cloudpickle that keeps each function's file name, so a replica's tracebacks name the user's file.

    cloudpickle 3.1.3 writes every code object's file as "<dynamic-code>" to make its bytes
    reproducible; for a service that costs more than it gives.
    """

    def reducer_override(self, obj: Any) -> Any:
        kind = type(obj)
        if kind is types.CodeType:
            rebuild, args = self.dispatch_table[types.CodeType](obj)
            return rebuild, tuple(obj.co_filename if arg == "<dynamic-code>" else arg for arg in args)
        if kind.__name__ == "State" and kind.__module__ == "starlette.datastructures":
            # An app's `state` (fs.asgi_service(app)): its __getattr__ recurses when pickle's default rebuilds it.
            return kind, (dict(obj._state),)
        if kind.__name__ == "LocalProxy" and kind.__module__ == "werkzeug.local":
            # Flask's `request`, `g`, `session`, `current_app`, imported at the top of a module pickled by value (a
            # factory for fs.deploy): the replica's own, found by name, rather than a context variable copied.
            found = _flask_global_name(obj)
            if found is not None:
                return getattr, found
        return super().reducer_override(obj)


def _flask_global_name(proxy: Any) -> tuple[types.ModuleType, str] | None:
    module = sys.modules.get("flask.globals")
    for name in ("request", "session", "g", "current_app", "app_ctx", "request_ctx"):
        if module is not None and getattr(module, name, None) is proxy:
            return module, name
    return None


def _is_installed(module: Any) -> bool:
    """Modules from site-packages (and fnserve itself) are imported on the replica, not shipped."""
    file = getattr(module, "__file__", None) or ""
    name = getattr(module, "__name__", "")
    return "site-packages" in file or name == "fnserve" or name.startswith("fnserve.")


class _RuntimeUnpickler(pickle.Unpickler):
    """Unpickles what cloudpickle made, with this process's own cloudpickle: in a service's own environment it is
    set aside under a private name (runtime/bootstrap.py), and the service may have no cloudpickle, or another."""

    def find_class(self, module: str, name: str) -> Any:
        top, dot, rest = module.partition(".")
        if top == "cloudpickle":
            module = cloudpickle.__name__ + dot + rest
        return super().find_class(module, name)


def _loads(data: bytes) -> Any:
    return _RuntimeUnpickler(io.BytesIO(data)).load()


def load_pickled_service(data: bytes) -> Service[Any]:
    obj = _loads(data)
    if not isinstance(obj, Service):
        raise SpecError(f"the pickled object is a {type(obj).__name__}, not a service")
    return obj


def dumps_init_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """The initializer's arguments for the replica: JSON when JSON carries them exactly, else cloudpickle.

    JSON is what a server outside dev mode accepts (it runs no pickled data from clients); a pickle keeps
    arbitrary objects (a model, a tuple, a numpy array) for servers in dev mode.
    """
    plain = {"args": list(args), "kwargs": kwargs}
    try:
        encoded = orjson.dumps(plain)
    except TypeError:
        encoded = None
    if encoded is not None and _no_tuples(plain) and orjson.loads(encoded) == plain:
        return encoded
    return bytes(cloudpickle.dumps((args, kwargs)))


def loads_init_arguments(data: bytes) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """The inverse of `dumps_init_arguments`: a JSON object starts with `{`, a pickle (protocol 2+) with 0x80."""
    if is_json_init(data):
        plain = orjson.loads(data)
        return tuple(plain["args"]), plain["kwargs"]
    args, kwargs = _loads(data)
    return tuple(args), dict(kwargs)


def is_json_init(data: bytes) -> bool:
    return data[:1] == b"{"


def _no_tuples(value: Any) -> bool:
    """JSON turns tuples into lists, which compare unequal to them: refuse them up front, anywhere inside."""
    if isinstance(value, tuple):
        return False
    if isinstance(value, list):
        return all(_no_tuples(item) for item in value)
    if isinstance(value, dict):
        return all(_no_tuples(item) for item in value.values())
    return True
