"""Errors of the local stack, importable by every cluster module without importing the stack itself."""


class StackError(RuntimeError):
    """The local stack cannot do what was asked (a taken port, a head that does not answer, ...)."""
