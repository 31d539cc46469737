"""The lazily exported names of ``toolkit`` are the functions, every time they are imported."""

from __future__ import annotations

import subprocess
import sys


def test_extend_is_the_function_on_every_import() -> None:
    code = (
        "import toolkit.cli\n"  # the CLI imports the library's modules; a name must not be shadowed by one
        "from toolkit import extend\n"
        "import toolkit.extension\n"
        "from toolkit import extend as again\n"
        "assert callable(extend) and extend is again, (extend, again)\n"
        "assert extend.__module__ == 'toolkit.extension'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
