"""Reference-code compatibility (see :mod:`neuript.model.official`)."""

from neuript.model.official import (  # noqa: F401
    REFERENCE_BUFFERS,
    config_from_reference,
    from_reference_state_dict,
    load_reference,
    reference_positions,
    to_reference_key,
    to_reference_state_dict,
)

__all__ = [
    "load_reference",
    "to_reference_key",
    "to_reference_state_dict",
    "from_reference_state_dict",
    "reference_positions",
    "config_from_reference",
    "REFERENCE_BUFFERS",
]
