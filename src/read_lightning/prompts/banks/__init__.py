"""The built-in templates of the eight capabilities, one module per bank.

Importing this package registers every bank's templates in
:data:`read_lightning.prompts.slots._BUILTIN`, in the order below (the order of
``DEFAULT_CAPABILITIES``). That order is the library's template order, so it fixes which prompts
a seed draws: keep it (``tests/test_templates.py`` checks it).
"""

# isort: off
from read_lightning.prompts.banks import general_knowledge
from read_lightning.prompts.banks import steerability
from read_lightning.prompts.banks import reasoning
from read_lightning.prompts.banks import math
from read_lightning.prompts.banks import code
from read_lightning.prompts.banks import tool_use
from read_lightning.prompts.banks import long_context
from read_lightning.prompts.banks import multilingual

# isort: on

__all__ = [
    "general_knowledge",
    "steerability",
    "reasoning",
    "math",
    "code",
    "tool_use",
    "long_context",
    "multilingual",
]
