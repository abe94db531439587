"""The results table: one row per retriever, printed with rich and written as Markdown/JSON."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ResultRow:
    dataset: str
    retriever: str
    metrics: dict[str, float]
    query_active_dims: float | None = None
    doc_active_dims: float | None = None
    flops: float | None = None
    extra: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return asdict(self)


def _columns(rows: list[ResultRow]) -> list[str]:
    names: list[str] = []
    for row in rows:
        names.extend(n for n in row.metrics if n not in names)
    return names


def _cells(row: ResultRow, metric_names: list[str]) -> list[str]:
    def fmt(v: float | None, spec: str) -> str:
        return "—" if v is None else format(v, spec)

    return ([row.dataset, row.retriever] + [fmt(row.metrics.get(n), ".4f") for n in metric_names]
            + [fmt(row.query_active_dims, ".1f"), fmt(row.doc_active_dims, ".1f"), fmt(row.flops, ".3f")])


HEADER_TAIL = ["q dims", "d dims", "FLOPS"]


def render_table(rows: list[ResultRow], title: str = "Results"):
    """A rich Table of the rows (print it with a rich Console)."""
    from rich.table import Table

    names = _columns(rows)
    table = Table(title=title)
    for i, h in enumerate(["dataset", "retriever", *names, *HEADER_TAIL]):
        table.add_column(h, justify="left" if i < 2 else "right")
    for row in rows:
        table.add_row(*_cells(row, names))
    return table


def render_markdown(rows: list[ResultRow]) -> str:
    names = _columns(rows)
    header = ["dataset", "retriever", *names, *HEADER_TAIL]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cells(row, names)) + " |" for row in rows]
    return "\n".join(lines) + "\n"
