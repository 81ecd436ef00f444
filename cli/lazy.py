"""Command groups whose commands are imported only when they run.

Every ``cim`` invocation used to import every command module - the importers, the analyses,
the simulations, the server - before parsing its arguments: about 1.9 s of start-up, most of
the CPU of a short command such as ``cim datasets list`` (the test suite alone starts ``cim``
about 230 times). A :class:`LazyGroup` names its commands as ``"module:attribute"`` and
imports one when it is called; ``cim --help`` still imports them all to show their help.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any, ClassVar

import typer
from typer._click.core import Command, Context  # the click typer vendors and builds on
from typer.core import TyperGroup


class LazyGroup(TyperGroup):
    """A typer group with, beside its own commands, :attr:`lazy` ones loaded on first use.

    Subclass it with ``lazy = {name: "module:attribute"}``; the attribute is a ``typer.Typer``
    (a sub-group) or a command function. Listed in the order of the mapping, after the group's
    own commands.
    """

    lazy: ClassVar[dict[str, str]] = {}

    def list_commands(self, ctx: Context) -> list[str]:
        own = super().list_commands(ctx)
        return own + [name for name in self.lazy if name not in own]

    def get_command(self, ctx: Context, cmd_name: str) -> Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None or cmd_name not in self.lazy:
            return command
        module, attribute = self.lazy[cmd_name].split(":")
        command = to_click(getattr(import_module(module), attribute), cmd_name)
        self.add_command(command, cmd_name)
        return command


def to_click(target: Any, name: str) -> Command:
    """The click command of a ``typer.Typer`` group or of a command function, named ``name``."""
    if isinstance(target, typer.Typer):
        group = typer.main.get_group(target)
        group.name = name
        return group
    single = typer.Typer()
    single.command(name)(target)
    return typer.main.get_command(single)
