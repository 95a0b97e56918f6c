"""The printed table: one row per figure, with its target and whether it was met."""

from collections.abc import Sequence
from typing import NamedTuple


class Row(NamedTuple):
    figure: str
    value: str
    target: str = ""
    verdict: str = ""  # "ok", "MISSED", or empty for a figure without a target


def verdict(met: bool) -> str:
    return "ok" if met else "MISSED"


def number(value: float) -> str:
    """A figure to three significant digits, without exponents, thousands grouped."""
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value >= 0.001 else f"{value:.2g}"


def spread_text(spread: dict[str, float], unit: str) -> str:
    """Median, interquartile range and number of runs."""
    return (
        f"{number(spread['median'])} {unit} "
        f"(IQR {number(spread['q1'])}-{number(spread['q3'])}, {spread['runs']} runs)"
    )


def slashed(values: Sequence[float]) -> str:
    return " / ".join(number(value) for value in values)


def render(title: str, sections: dict[str, list[Row]]) -> str:
    """A plain-text table, grouped by benchmark."""
    header = Row("figure", "value", "target", "met")
    rows = [header] + [row for section in sections.values() for row in section]
    widths = [max(len(row[column]) for row in rows) for column in range(3)]

    def line(row: Row) -> str:
        return "  ".join(cell.ljust(width) for cell, width in zip(row, widths + [0])).rstrip()

    lines = [title, "", line(header)]
    for name, section in sections.items():
        lines += [f"== {name}", *map(line, section)]
    return "\n".join(lines)


def missed(sections: dict[str, list[Row]]) -> list[str]:
    return [
        f"{name}: {row.figure}"
        for name, section in sections.items()
        for row in section
        if row.verdict == "MISSED"
    ]
