"""Fields the library names in its errors, shown as the command-line flags that set them.

The library names an option by its field (`` `clip_grad_norm` ``); a command prints it as its flag (``--clip``).
Most flags are the field with dashes; :data:`FLAGS` holds the rest.
"""

from __future__ import annotations

from spcl_search.errors import render

#: field -> flag, where the flag is not ``--`` + the field with dashes
FLAGS: dict[str, str] = {
    "clip_grad_norm": "--clip",
    "method_options": "--method-option",
    "model": "--model-option",
    "variant": "--variant",
}


def flag(field: str) -> str:
    """The flag that sets ``field``."""
    return FLAGS.get(field, "--" + field.replace("_", "-"))


def for_cli(message: str) -> str:
    """``message`` with every field it names shown as its flag."""
    return render(message, flag)
