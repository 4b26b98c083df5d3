"""How commands print: JSON for scripts, short lines for people, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from pydantic import BaseModel


def emit_json(data: BaseModel | dict[str, Any] | list[Any]) -> None:
    if isinstance(data, BaseModel):
        typer.echo(data.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(data, indent=2, default=str))


def table(headers: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell, like kubectl's plain output."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        cells = (str(cell).ljust(width) for cell, width in zip(line, widths, strict=False))
        typer.echo("  ".join(cells).rstrip())


def progress(message: str) -> None:
    """Progress of a long operation; goes to stderr so --json output stays clean."""
    print(message, file=sys.stderr, flush=True)
