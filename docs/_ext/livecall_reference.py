"""Reference material rendered from livecall's own code, so the docs cannot drift from it.

- ``.. livecall-hook:: NAME`` renders a hook's docstring from ``livecall.hookspecs``
  and checks that the section it sits in is titled with the hook's signature.
- ``.. livecall-class:: NAME`` renders a public class of ``livecall``: its
  docstring, its fields (attrs classes) or members (enums), its properties and,
  for events, the ``event`` name of its JSON-lines record.
- ``.. livecall-options:: NAME`` renders the keyword-only arguments of a public
  class with their defaults; its content describes each (``:name: text``), and
  an argument without a description, or a description of no argument, fails
  the build.
- ``.. livecall-messages:: PROVIDER`` renders the table from a provider's wire
  messages to event classes.
- ``.. livecall-scenarios::`` renders the simulator's scenarios.
- ``.. livecall-help:: [COMMAND ...]`` renders ``livecall COMMAND --help`` as
  the built-in plugins (and the one named by ``:plugin: MODULE``) make it, and
  checks that its section is titled ``livecall COMMAND``.
- ``.. livecall-plugin-options:: MODULE`` renders the options a plugin module
  adds to ``livecall watch``.

A problem is a warning, which the build (``-W``) turns into an error.
"""

import argparse
import enum
import functools
import importlib
import inspect
import re
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import attrs
from docutils import nodes
from docutils.statemachine import StringList
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

import livecall
from livecall import hookspecs
from livecall._codec._converter import HiyaMessage, PhonicMessage, wire_types
from livecall.cli._parser import build_parser, global_options
from livecall.plugins import create_plugin_manager
from livecall.testing import scenarios

log = logging.getLogger(__name__)

MESSAGES = {"hiya": HiyaMessage, "phonic": PhonicMessage}
_MODULE_PREFIX = re.compile(r"\b(?:[a-z_][a-z0-9_]*\.)+")


def hook_signature(name: str) -> str:
    """``livecall_event(call, event)``: the title of a hook's section."""
    parameters = inspect.signature(getattr(hookspecs, name)).parameters
    return f"{name}({', '.join(parameters)})"


def type_name(annotation: Any) -> str:
    """``Optional[float]`` rather than ``typing.Optional[float]``."""
    if isinstance(annotation, type):
        return annotation.__name__
    return _MODULE_PREFIX.sub("", str(annotation))


def list_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    lines = [".. list-table::", "   :header-rows: 1", ""]
    for row in [header, *rows]:
        lines.append(f"   * - {row[0]}")
        lines.extend(f"     - {cell}" for cell in row[1:])
    return lines + [""]


class ReferenceDirective(SphinxDirective):
    """A directive whose body is reST generated from the code."""

    def run(self) -> list[nodes.Node]:
        source, _ = self.get_source_info()
        container = nodes.Element()
        generated = StringList(self.generate(), source=f"{source}:<generated>")
        self.state.nested_parse(generated, self.content_offset, container)
        return container.children

    def generate(self) -> list[str]:
        raise NotImplementedError

    def public_class(self) -> Optional[type]:
        cls = getattr(livecall, self.arguments[0], None)
        if not isinstance(cls, type):
            self.fail(f"livecall has no public class {self.arguments[0]!r}")
            return None
        return cls

    def fail(self, message: str) -> list[str]:
        log.warning(message, location=(self.env.docname, self.lineno))
        return []


class HookDirective(ReferenceDirective):
    required_arguments = 1

    def generate(self) -> list[str]:
        name = self.arguments[0]
        spec = getattr(hookspecs, name, None)
        if not hasattr(spec, "livecall_spec"):
            return self.fail(f"{name} is not a hook in livecall.hookspecs")
        section = self.state.parent
        title = section[0].astext() if isinstance(section, nodes.section) else None
        if title != hook_signature(name):
            return self.fail(f"the section of {name} must be titled {hook_signature(name)!r}, not {title!r}")
        return inspect.getdoc(spec).splitlines() + [""]


class ClassDirective(ReferenceDirective):
    required_arguments = 1

    def generate(self) -> list[str]:
        cls = self.public_class()
        if cls is None:
            return []
        body = inspect.getdoc(cls).splitlines() + [""]
        if issubclass(cls, livecall.Event) and cls is not livecall.Event:
            body += [f"Record ``event``: ``{cls.kind}``", ""]
        if issubclass(cls, enum.Enum):
            body += _members(cls)
        elif attrs.has(cls):
            body += _fields(cls)
        body += _properties(cls)
        directive = [f".. py:class:: {cls.__name__}", "   :module: livecall", ""]
        return directive + [f"   {line}" if line else "" for line in body]


class OptionsDirective(ReferenceDirective):
    required_arguments = 1
    has_content = True

    def generate(self) -> list[str]:
        cls = self.public_class()
        if cls is None:
            return []
        parameters = {
            parameter.name: parameter
            for parameter in inspect.signature(cls).parameters.values()
            if parameter.kind is inspect.Parameter.KEYWORD_ONLY
        }
        described = _field_list(self.content)
        if set(described) != set(parameters):
            return self.fail(
                f"{cls.__name__} options undocumented: {sorted(set(parameters) - set(described))}; "
                f"documented but not options: {sorted(set(described) - set(parameters))}"
            )
        rows = [
            (f"``{name}``", _default(parameter.default, inspect.Parameter.empty), described[name])
            for name, parameter in parameters.items()
        ]
        return list_table(("Argument", "Default", "Meaning"), rows)


class MessagesDirective(ReferenceDirective):
    required_arguments = 1

    def generate(self) -> list[str]:
        provider = self.arguments[0]
        union = MESSAGES.get(provider)
        if union is None:
            return self.fail(f"unknown provider {provider!r}: expected one of {sorted(MESSAGES)}")
        rows = [
            (f"``{wire}``", f":class:`~livecall.{cls.__name__}`", f"``{cls.kind}``")
            for wire, cls in wire_types(union).items()
        ]
        return list_table(("Wire ``type``", "Event", "Record ``event``"), rows)


class ScenariosDirective(ReferenceDirective):
    def generate(self) -> list[str]:
        rows = [
            (info.provider, f"``{info.name}``", info.summary, _literals(info.options) or "-")
            for info in scenarios()
        ]
        return list_table(("Provider", "Scenario", "What it plays", "Simulator options"), rows)


class HelpDirective(ReferenceDirective):
    optional_arguments = 5
    option_spec = {"plugin": str}

    def generate(self) -> list[str]:
        modules = [self.options["plugin"]] if "plugin" in self.options else []
        pm = create_plugin_manager(modules=modules, autoload=False)
        parser = build_parser(pm, global_options())
        for name in self.arguments:
            parser = _subcommands(parser).get(name)
            if parser is None:
                return self.fail(f"livecall has no command {' '.join(self.arguments)!r}")
        command = " ".join(["livecall", *self.arguments])
        section = self.state.parent
        title = section[0].astext() if isinstance(section, nodes.section) else None
        if title != command:
            return self.fail(f"the help of {command!r} must be in a section titled so, not {title!r}")
        _fixed_width(parser)
        return _literal(parser.format_help())


class PluginOptionsDirective(ReferenceDirective):
    required_arguments = 1

    def generate(self) -> list[str]:
        module = importlib.import_module(self.arguments[0])
        parser = argparse.ArgumentParser(prog="livecall watch PROVIDER", add_help=False)
        addoption = getattr(module, "livecall_addoption", None)
        if addoption is None:  # a plugin that only adds commands
            return []
        addoption(parser=parser)
        _fixed_width(parser)
        formatter = parser._get_formatter()
        for group in parser._action_groups:
            if group._group_actions:
                formatter.start_section(group.title)
                formatter.add_arguments(group._group_actions)
                formatter.end_section()
        return _literal(formatter.format_help())


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _fixed_width(parser: argparse.ArgumentParser) -> None:
    """Help of one width and no colour, whatever the terminal building the docs."""
    parser.formatter_class = functools.partial(argparse.HelpFormatter, width=88)
    if hasattr(parser, "color"):
        parser.color = False


def _literal(text: str) -> list[str]:
    return [".. code-block:: text", ""] + [f"   {line}" if line else "" for line in text.splitlines()] + [""]


def _field_list(lines: Iterable[str]) -> dict[str, str]:
    """``:name: text`` lines, continued by indented lines, as ``{name: text}``."""
    fields: dict[str, str] = {}
    name = None
    for line in lines:
        match = re.match(r":(\w+):\s*(.*)", line)
        if match:
            name = match.group(1)
            fields[name] = match.group(2)
        elif name is not None and line.strip():
            fields[name] += " " + line.strip()
    return fields


def _fields(cls: type) -> list[str]:
    inherited = {field.name for field in attrs.fields(livecall.Event)} if cls is not livecall.Event else set()
    rows = [
        (f"``{field.name}``", f"``{type_name(field.type)}``", _default(field.default, attrs.NOTHING))
        for field in attrs.fields(cls)
        if field.name not in inherited
    ]
    return list_table(("Field", "Type", "Default"), rows) if rows else []


def _default(default: Any, missing: Any) -> str:
    if default is missing:
        return "required"
    if isinstance(default, attrs.Factory):
        if default.factory not in (dict, list, tuple):
            return "set on arrival"
        default = default.factory()
    return f"``{default!r}``"


def _literals(names: Iterable[str]) -> str:
    return ", ".join(f"``{name}``" for name in names)


def _members(cls: type) -> list[str]:
    comments: dict[Any, list[str]] = ModuleAnalyzer.for_module(cls.__module__).find_attr_docs()
    rows = []
    for member in cls:
        meaning = " ".join(comments.get((cls.__name__, member.name), [])).strip()
        rows.append((f"``{member.name}``", f"``{member.value!r}``", meaning or "-"))
    return list_table(("Member", "Value", "Meaning"), rows)


def _properties(cls: type) -> list[str]:
    lines = []
    for name, value in vars(cls).items():
        if isinstance(value, property):
            lines += [f"``{name}``", f"   {inspect.getdoc(value)}", ""]
    return ["Properties:", ""] + lines if lines else []


def setup(app: Any) -> dict[str, Any]:
    app.add_directive("livecall-hook", HookDirective)
    app.add_directive("livecall-class", ClassDirective)
    app.add_directive("livecall-options", OptionsDirective)
    app.add_directive("livecall-messages", MessagesDirective)
    app.add_directive("livecall-scenarios", ScenariosDirective)
    app.add_directive("livecall-help", HelpDirective)
    app.add_directive("livecall-plugin-options", PluginOptionsDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
