"""The built-in templates of the eight capabilities, one module per bank, named after it.

Importing this package registers every bank's templates in
:data:`read_lightning.prompts.slots._BUILTIN` in the order of ``DEFAULT_CAPABILITIES``. That
order is the library's template order, so it fixes which prompts a seed draws
(``tests/test_templates.py`` checks it).
"""

import importlib

from read_lightning.core.capabilities import DEFAULT_CAPABILITIES

for _capability in DEFAULT_CAPABILITIES:
    importlib.import_module(f"{__name__}.{_capability}")
del _capability
