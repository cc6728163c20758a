"""Subcommands of the ``valan`` CLI, one module each.

Every module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules import
heavy dependencies (torch, ray) inside ``run`` so that ``valan --help`` stays fast.
"""
