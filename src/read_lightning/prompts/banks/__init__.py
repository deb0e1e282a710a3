"""The built-in templates of the eight capabilities, one module per bank.

Importing this package registers every bank's templates in
:data:`read_lightning.prompts.slots._BUILTIN`, in the order below; that order is the library's
template order, so it fixes which prompts a seed draws.
"""

from read_lightning.prompts.banks import (  # imported for their registrations
    general_knowledge,
    steerability,
    reasoning,
    math,
    code,
    tool_use,
    long_context,
    multilingual,
)

__all__ = ["code", "general_knowledge", "long_context", "math", "multilingual", "reasoning", "steerability", "tool_use"]
