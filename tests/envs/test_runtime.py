"""The replica runtime's overlay holds every package the worker imports (a missing one would fail each replica of a
service with its own environment), and a replica in its own environment sees none of the server's others."""

from __future__ import annotations

import subprocess
import sys

from fnserve.envs.runtime import RUNTIME_MODULES


def test_runtime_modules_cover_what_the_worker_and_its_preload_import() -> None:
    script = (
        "import sys\n"
        "import fnserve.runtime.worker, fnserve.runtime.describe\n"
        "from fnserve.runtime.preload import preload\n"
        "preload()\n"
        "tops = {name.partition('.')[0] for name in sys.modules}\n"
        "print('\\n'.join(sorted(t for t in tops if not t.startswith('_') and t not in sys.stdlib_module_names)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    imported = set(out.split())

    assert imported - {"cython_runtime"} <= set(RUNTIME_MODULES)
