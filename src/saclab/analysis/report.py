"""The study's report: numbers, figures and the notebook's three comparison questions, written as
``report.md``, one self-contained ``report.html`` and ``numbers.json``.

The parts are apart: ``numbers.study_numbers`` computes every value from the
run files and datasets, ``verdicts`` decides which answer they support,
``figures`` draws the PNGs, and the Jinja2 template ``templates/report.md.j2``
holds all the prose.  The HTML page is the same Markdown converted by the
``markdown`` library, its figures embedded as data URIs.
"""

from __future__ import annotations

import base64
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
import markdown

from saclab.analysis.figures import study_figures
from saclab.analysis.numbers import study_numbers
from saclab.analysis.verdicts import verdicts
from saclab.files import write_text

TEMPLATES = Path(__file__).parent / "templates"
REPORT_DIR = "report"


def fmt(x: Any, digits: int | str = 1) -> str:
    """A number for the text: ``digits`` decimals (or a format spec such as "g"); n/a for nan/None."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:{digits}}" if isinstance(digits, str) else f"{x:.{digits}f}"


def interval(bounds: Any) -> str:
    """A 95% CI as "[low, high]"."""
    low, high = bounds
    return f"[{fmt(low)}, {fmt(high)}]"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True, autoescape=False)  # Markdown out; HTML comes from `markdown`
    env.filters["f"] = fmt
    env.filters["ci"] = interval
    return env


def render_markdown(numbers: dict[str, Any], figures: dict[str, str],
                    figure_src: Callable[[str], str] | None = None) -> str:
    """The report's Markdown.  ``figures``: name -> file relative to the report; ``figure_src``
    turns that file into the image address written (default: the file itself)."""
    source = figure_src or (lambda path: path)

    def figure(name: str, caption: str) -> str:
        return f"![{caption}]({source(figures[name])})\n\n*{caption}*"

    template = _environment().get_template("report.md.j2")
    return template.render(numbers=numbers, verdicts=numbers["verdicts"], figures=figures, figure=figure)


def render_html(numbers: dict[str, Any], figures: dict[str, str], report_dir: Path) -> str:
    """One self-contained page: the Markdown converted by ``markdown``, figures embedded."""

    def embedded(path: str) -> str:
        return "data:image/png;base64," + base64.b64encode((report_dir / path).read_bytes()).decode()

    body = markdown.markdown(render_markdown(numbers, figures, embedded), extensions=["tables"])
    title = f"saclab study report: {numbers['env']['id']}"
    return _environment().get_template("report.html.j2").render(title=title, body=body)


def report_numbers(out: str | os.PathLike, **kwargs: Any) -> dict[str, Any]:
    """``numbers.study_numbers`` with the verdicts added (what ``numbers.json`` holds)."""
    numbers = study_numbers(out, **kwargs)
    numbers["verdicts"] = verdicts(numbers)
    return numbers


def write_report(out: str | os.PathLike, **kwargs: Any) -> Path:
    """Compute the numbers from the logged runs and write report.md, report.html, numbers.json and
    the figures in ``out/report``; returns the path of report.md.  ``kwargs`` go to ``study_numbers``."""
    report_dir = Path(out) / REPORT_DIR
    numbers = report_numbers(out, **kwargs)
    figures = study_figures(numbers, report_dir / "figures")
    write_text(report_dir / "numbers.json", json.dumps(numbers, indent=2, default=float))
    write_text(report_dir / "report.md", render_markdown(numbers, figures))
    write_text(report_dir / "report.html", render_html(numbers, figures, report_dir))
    return report_dir / "report.md"


__all__ = ["write_report", "report_numbers", "render_markdown", "render_html"]
