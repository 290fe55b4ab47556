"""Reading docker-compose.yml the way Docker Compose does, for static checks without a Docker
engine: YAML (merge keys included), then variable interpolation per the Compose Specification.

Interpolation (https://github.com/compose-spec/compose-spec/blob/main/12-interpolation.md):
`$$` is a literal `$`; `$VAR` and `${VAR}` substitute (empty when unset); `${VAR:-default}`
and `${VAR-default}` fall back when unset or empty / unset; `${VAR:?error}` and `${VAR?error}`
fail when unset or empty / unset; `${VAR:+alt}` and `${VAR+alt}` give `alt` when set and
non-empty / set. Nested expressions are not supported (the file uses none).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_TOKEN = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[^}]*)\}|(?P<named>[A-Za-z_][A-Za-z0-9_]*))")
_BRACED = re.compile(r"(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?", re.S)


class MissingVariable(ValueError):  # noqa: N818  (named as Compose reports it)
    """A ${VAR:?error} or ${VAR?error} without a value."""


@dataclass
class Interpolator:
    environment: Mapping[str, str]
    used: set[str] = field(default_factory=set)  # every variable name the file refers to

    def text(self, value: str) -> str:
        def substitute(match: re.Match[str]) -> str:
            if match.group("escaped"):
                return "$"
            if match.group("named"):
                self.used.add(match.group("named"))
                return self.environment.get(match.group("named"), "")
            braced = _BRACED.fullmatch(match.group("braced"))
            if braced is None:
                raise ValueError(f"invalid interpolation ${{{match.group('braced')}}}")
            name, op, arg = braced.group("name"), braced.group("op"), braced.group("arg") or ""
            self.used.add(name)
            value = self.environment.get(name)
            if op is None:
                return value or ""
            # with a colon, an empty value counts as missing
            given = value is not None and (value != "" or not op.startswith(":"))
            if op.endswith("-"):
                return value if given and value is not None else arg
            if op.endswith("?"):
                if not given or value is None:
                    raise MissingVariable(f"required variable {name} is missing a value: {arg}")
                return value
            return arg if given else ""  # :+ and +

        return _TOKEN.sub(substitute, value)

    def tree(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.text(node)
        if isinstance(node, list):
            return [self.tree(item) for item in node]
        if isinstance(node, dict):
            return {key: self.tree(item) for key, item in node.items()}
        return node


def load(path: Path, environment: Mapping[str, str]) -> tuple[dict[str, Any], set[str]]:
    """The interpolated compose model, and the names of the variables it uses."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    interpolator = Interpolator(environment)
    return interpolator.tree(raw), interpolator.used
