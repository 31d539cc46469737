"""``python -m toolkit.cli``: the ``rehead`` console script, for launchers that start modules.

``torchrun --nproc-per-node N -m toolkit.cli finetune ...`` runs fine-tuning data-parallel; the
exit code is ``main``'s, as the console script's.
"""

import sys

from toolkit.cli import main

if __name__ == "__main__":
    sys.exit(main())
