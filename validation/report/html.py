"""A self-contained HTML page: tables, inline PNG plots, and a render marker for browser checks.

The page fits a 1280 px window without scrolling sideways (``tests/validation/test_report_layout.py``
checks it in Chromium): numbers stay on one line, while names, notes and reasons wrap; a
measurement's reason gets a row of its own under the latency row, never a squeezed column. The
headline gives parity and latency their own verdicts (``ValidationReport.verdicts``).

Once the page has loaded, a small script counts the images that decoded (``naturalWidth > 0``)
and sets ``<body data-rendered="ok|broken">`` plus the text of ``#render-status``, so a
headless browser can confirm that the plots render.
"""

from __future__ import annotations

from html import escape
from typing import Any

from converters.compare import Failure
from validation.report import plots
from validation.report._format import mib, ms, num, pct, times
from validation.report._notes import (
    head_note,
    head_reasons,
    inputs_line,
    latency_note,
    speedup_note,
    timing_line,
)
from validation.report.console import agreement_text, is_bench
from validation.result import ArtifactResult, ValidationReport, Verdict

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem;color:#1d2330;
background:#fafbfc}
h1{font-size:1.5rem;margin-bottom:.2rem}
h2{margin-top:2rem;border-bottom:1px solid #d8dde6;padding-bottom:.3rem}
h3{margin-bottom:.4rem} table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;background:#fff}
th,td{border:1px solid #d8dde6;padding:.25rem .55rem;text-align:right} th{background:#eef1f6}
td.l,th.l{text-align:left} .pass,.ok{color:#1a7f37;font-weight:600} .fail{color:#c62828;font-weight:600}
.inconclusive{color:#b26a00;font-weight:600} .skipped,.muted{color:#777}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.8rem;color:#fff;font-weight:600}
.badge.pass{background:#1a7f37;color:#fff} .badge.fail{background:#c62828;color:#fff}
.badge.inconclusive{background:#b26a00;color:#fff} .badge.info{background:#4c5a70;color:#fff}
img{max-width:100%;height:auto;border:1px solid #e3e7ee;background:#fff}
.plots{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}
ul.fail li{color:#c62828} ul.fail li.inconclusive{color:#b26a00}
code{font-size:.85em} td:not(.l),.nw{white-space:nowrap}
.note{display:block;color:#b26a00;font-size:.75rem;white-space:normal;text-align:left}
td.name{overflow-wrap:anywhere;min-width:8rem;max-width:20rem} p,li,h1,h2,h3{overflow-wrap:anywhere}
tr.why td{text-align:left;white-space:normal;color:#b26a00;font-size:.8rem;border-top:none}
.badge.quiet{background:#fff;color:#8a6d3b;border:1px solid #d9b56c;font-weight:500}
.badge.skipped{background:#e3e7ee;color:#4c5a70} h1 .reason{font-size:.85rem;font-weight:400;color:#4c5a70}
"""

_SCRIPT = """
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.filter(function (i) { return i.complete && i.naturalWidth > 0; }).length;
  var tables = document.querySelectorAll('table').length;
  document.body.setAttribute('data-rendered', ok === imgs.length && imgs.length > 0 ? 'ok' : 'broken');
  document.getElementById('render-status').textContent =
    'rendered ' + ok + '/' + imgs.length + ' plots, ' + tables + ' tables';
});
"""


def _cls(status: str) -> str:
    return f'<span class="{escape(status)}">{escape(status.upper())}</span>'


def _table(
    headers: list[str], rows: list[list[str]], left: int = 1, why: list[str] | None = None, named: bool = True
) -> str:
    """Columns before ``left`` are text, aligned left; when ``named``, the first is a name (of an
    artifact, a runner) that may wrap anywhere, so a long file name never widens the page.

    ``why`` (one entry per row, escaped HTML, empty for none) is a row of its own under its row,
    as wide as the table: a reason squeezed into a last column wraps one word per line.
    """
    aligned = ["l" + (" name" if named and i == 0 else "") if i < left else "" for i in range(len(headers))]
    head = "".join(f'<th class="{a}">{escape(h)}</th>' for a, h in zip(aligned, headers, strict=True))
    notes = why or [""] * len(rows)
    body = "".join(
        "<tr>" + "".join(f'<td class="{a}">{c}</td>' for a, c in zip(aligned, r, strict=True)) + "</tr>"
        + (f'<tr class="why"><td colspan="{len(headers)}">why: {note}</td></tr>' if note else "")
        for r, note in zip(rows, notes, strict=True)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _noted(text: str, why: str) -> str:
    """``text`` with its inconclusive note under it, in words (the number never wraps, the note may)."""
    return escape(text) + (f' <span class="note">({escape(why)})</span>' if why else "")



def _per_batch(report: ValidationReport, a: ArtifactResult) -> tuple[str, str]:
    """The artifact's p50 / p99 and speed-up at every batch size, one line each."""
    lat, speed = [], []
    for bs, s in sorted(a.latency.items()):
        lat.append(_noted(f"b{bs}: {ms(s.p50_ms)} / {ms(s.p99_ms)}", latency_note(report, s)))
        speed.append(_noted(f"b{bs}: {times(a.speedup.get(bs))}", speedup_note(report, a, bs)))
    return "<br>".join(lat) or "—", "<br>".join(speed) or "—"  # a line per batch size


def _summary(report: ValidationReport) -> str:
    bench = is_bench(report)
    rows = []
    for a in report.artifacts:
        lat, speed = _per_batch(report, a)
        if bench:
            # a bench has no verdict to pass: its latency is either trustworthy ("ok") or not
            shown = "ok" if a.latency_status == "pass" else a.latency_status
            rows.append([escape(a.name), _cls(shown), escape(f"{a.kind}/{a.precision}"), mib(a.size_bytes), lat, speed])
            continue
        kind = f"{escape(a.kind)}/<wbr>{escape(a.precision)}"  # may break after the slash
        head = [escape(a.name), _cls(a.parity_status), _cls(a.latency_status), kind]
        worst = a.parity.worst("all") if a.parity is not None else None
        worst_new = a.parity.worst("new") if a.parity is not None else None
        rows.append(
            [
                *head,
                escape(a.preset or "—"),
                mib(a.size_bytes),
                num(worst.max_abs) if worst else "—",
                num(worst_new.max_abs) if worst_new else "—",
                agreement_text(a),
                lat,
                speed,
            ]
        )
    if bench:
        return _table(["artifact", "latency", "kind", "size (MiB)", "p50 / p99 ms", "speed-up vs eager"], rows, left=3)
    return _table(
        [
            "artifact",
            "parity",
            "latency",
            "kind",
            "preset",
            "size (MiB)",
            "max|Δ| all",
            "max|Δ| new",
            "top-1 agreement with eager, % all/kept/new classes",
            "p50 / p99 ms",
            "speed-up vs eager",
        ],
        rows,
        left=5,
    )


def _failure_list(failures: list[Failure], *, with_artifact: bool) -> str:
    """Every failure, one item each; inconclusive ones (could not be decided) in their own colour."""
    items = "".join(
        f'<li class="{"fail" if f.conclusive else "inconclusive"}">'
        f"{'' if f.conclusive else '<b>inconclusive</b>: '}{escape(f.line() if with_artifact else f.message)}</li>"
        for f in failures
    )
    return f'<ul class="fail">{items}</ul>'


def _parity_section(a: ArtifactResult, report: ValidationReport) -> str:
    parity = a.parity
    if parity is None:
        return ""
    rows = []
    for batch in parity.batches:
        for r in batch.results:
            m = r.metrics
            rows.append(
                [
                    str(batch.batch_size),
                    escape(r.output),
                    escape(r.slice.label()),
                    num(m.max_abs),
                    num(m.mean_abs),
                    num(m.p99_abs),
                    num(m.max_rel),
                    f"{m.cosine_min:.6f}",
                    num(m.sqnr_db),
                    pct(m.top1),
                    pct(m.top5),
                    num(m.kl_max),
                    str(m.nonfinite_mismatch),
                    str(r.violations),
                    _cls("fail" if r.failures else "pass"),
                ]
            )
    table = _table(
        [
            "batch",
            "output",
            "slice",
            "max|Δ|",
            "mean|Δ|",
            "p99|Δ|",
            "max rel",
            "cosine min",
            "SQNR dB",
            "top-1 agreement in slice",
            "top-5 agreement in slice",
            "max KL",
            "NaN/Inf",
            "over tol",
            "verdict",
        ],
        rows,
        left=3,
        named=False,
    )
    parts = [f"<p>tolerance: <code>{escape(parity.tolerance.source)}</code></p>", table]
    if parity.failures:
        parts.append(_failure_list(parity.failures, with_artifact=False))
    names = report.model.get("class_names", [])
    new = set(report.model.get("new_indices", []))
    images = [_img(plots.error_histogram(a.name, parity), "error histogram by class slice")]
    if names and any(b.per_class for b in parity.batches):
        values = plots.per_class_values(parity, len(names))
        shown = plots.per_class_selection(values, new)
        images.append(
            _img(plots.per_class_error(a.name, values, shown, names, new), "per-class max error",
                 plot="per-class", classes=",".join(map(str, shown)))
        )
    loc = parity.localisation
    if loc:
        parts.append(f"<p><b>localisation</b>: {escape(loc['status'])} — {escape(loc.get('reason', ''))}</p>")
        trace_plot = plots.localisation_trace(a.name, loc)
        if trace_plot:
            images.append(_img(trace_plot, "localisation trace"))
    parts.append('<div class="plots">' + "".join(images) + "</div>")
    return "".join(parts)


def _img(src: str, alt: str, **data: str) -> str:
    """An inline plot; ``data`` become ``data-*`` attributes (which classes a chart shows)."""
    attrs = "".join(f' data-{k}="{escape(v)}"' for k, v in data.items())
    return f'<img alt="{escape(alt)}" src="{src}"{attrs}>'


def _int8_section(a: ArtifactResult) -> str:
    """The accuracy-aware INT8 decision: one line, the groups the speed rule timed, the nodes
    left in fp32 and the agreement-against-latency plot of every variant tried."""
    from validation.report.console import int8_line

    search = a.int8_search or {}
    groups = _table(
        ["group", "nodes", "INT8 ms", "fp32 ms", "kept"],
        [[escape(g["group"]), str(g["nodes"]), num(g["int8_ms"]), num(g["fp32_ms"]),
          "INT8" if g["kept_int8"] else "fp32"] for g in search.get("groups", [])],
    )
    nodes = _table(
        ["node", "op", "group", "reason", "SQNR drop dB"],
        [[escape(n["node"]), escape(n["op"]), escape(n["group"]), escape(n["reason"]),
          num(n["sensitivity_db"]) if n.get("sensitivity_db") is not None else "-"]
         for n in search.get("fp32_nodes", [])[:60]],
    )
    return (
        f"<p>{escape(int8_line(search))}</p><p class=\"muted\">sensitivity: "
        f"{escape(str(search.get('sensitivity_method')))}; held out: {escape(str(search.get('heldout')))}</p>"
        + groups + nodes
        + f'<div class="plots"><img alt="plot" src="{plots.int8_variants(a.name, search)}"></div>'
    )


def _latency_section(report: ValidationReport) -> str:
    batches = sorted({bs for a in report.artifacts for bs in a.latency} | set(report.reference_latency))
    if not batches:
        return ""
    rows, why = [], []
    entries: list[tuple[str, ArtifactResult | None, dict[int, Any]]] = [("eager-fp32", None, report.reference_latency)]
    entries += [(a.name, a, a.latency) for a in report.artifacts]
    for name, artifact, lat in entries:
        for bs in batches:
            s = lat.get(bs)
            if s is None:
                continue
            if artifact is None:
                speed = _noted("1.00×", "")
            else:
                speed = _noted(times(artifact.speedup.get(bs)), speedup_note(report, artifact, bs))
            rows.append(
                [
                    escape(name),
                    str(bs),
                    str(s.runs),
                    ms(s.p50_ms),
                    ms(s.p90_ms),
                    ms(s.p95_ms),
                    ms(s.p99_ms),
                    ms(s.mean_ms),
                    ms(s.std_ms),
                    f"{s.cv:.3f}",
                    f"{s.throughput:.1f}",
                    speed,
                    _cls("ok" if s.conclusive else "inconclusive"),
                ]
            )
            why.append(escape(s.reason) if not s.conclusive else "")
    bound = report.settings.get("latency") or {}
    parts = [
        "<h2>Latency</h2>",
        f'<p class="muted">A measurement whose coefficient of variation (CV) exceeds '
        f"{escape(str(bound.get('max_cv', '—')))} is inconclusive: its numbers, and every speed-up "
        "computed from them, cannot be trusted.</p>",
        f'<p class="muted">{escape(timing_line(report))}.</p>',
        _table(
            [
                "runner",
                "batch",
                "runs",
                "p50 ms",
                "p90 ms",
                "p95 ms",
                "p99 ms",
                "mean ms",
                "std ms",
                "CV",
                "samples/s",
                "speed-up vs eager",
                "status",
            ],
            rows,
            why=why,
        ),
    ]
    parts += [_cold_start(report), _head_only(report)]
    parts.append(
        '<div class="plots">'
        + "".join(
            f'<img alt="latency plot" src="{plots.latency_distribution(report, bs)}">' for bs in batches
        )
        + "</div>"
    )
    return "".join(parts)



def _cold_start(report: ValidationReport) -> str:
    """The cold-start table (load, first run, total) of every artifact that measured one."""
    cold = [
        [escape(a.name), *(f"{ms(a.cold_start[key])} ms" for key in ("load_ms", "first_run_ms", "total_ms"))]
        for a in report.artifacts
        if a.cold_start
    ]
    if not cold:
        return ""
    return (
        "<h3>Cold start</h3>"
        '<p class="muted">load: opening the artifact (session or module); first run: the first batch '
        "after it; total: load + first run.</p>"
        + _table(["artifact", "load", "first run", "total (load + first run)"], cold)
    )


def _head_only(report: ValidationReport) -> str:
    """The old head against the new head on their own (eager), per batch size."""
    head = report.head_latency
    if not head:
        return ""
    hrows = [
        [
            str(r["batch_size"]),
            ms(r["old_head"]["p50_ms"]),
            ms(r["old_head"]["p99_ms"]),
            ms(r["new_head"]["p50_ms"]),
            ms(r["new_head"]["p99_ms"]),
            _noted(times(r.get("new_over_old")), head_note(report, r)),
            _cls("inconclusive" if head_reasons(r) else "ok"),
        ]
        for r in head["batches"]
    ]
    hwhy = ["; ".join(escape(reason) for reason in head_reasons(r)) for r in head["batches"]]
    return (
        f"<h3>Head on its own (eager): old {escape(head['shapes']['old_head'])} vs new "
        f"{escape(head['shapes']['new_head'])}</h3>"
        + _table(
            ["batch", "old p50 ms", "old p99 ms", "new p50 ms", "new p99 ms", "new / old", "status"], hrows,
            why=hwhy,
            named=False,
        )
    )


def _environment(report: ValidationReport) -> str:
    env = dict(report.environment)
    versions = env.pop("versions", {})
    rows = [[escape(str(k)), escape(str(v))] for k, v in env.items()]
    rows += [[escape(f"version {k}"), escape(str(v))] for k, v in versions.items()]
    rows += [[escape(f"setting {k}"), escape(str(v))] for k, v in report.settings.items()]
    rows += [[escape(f"timing {k}"), f"{v:.2f} s"] for k, v in report.timing.items()]
    return "<h2>Environment and settings</h2>" + _table(["key", "value"], rows, left=2)


def _verdict(v: Verdict) -> str:
    """A verdict's badge and reason: ``parity PASS``, ``latency inconclusive (noisy machine: ...)``.
    Noise that decides nothing gets a quiet badge, never the orange of a blocking verdict."""
    style = "quiet" if v.status == "inconclusive" and not v.blocking else v.status
    word = v.text().removesuffix(f" ({v.reason})") if v.reason else v.text()
    reason = f'<span class="reason"> ({escape(v.reason)})</span>' if v.reason else ""
    return f'<span class="badge {escape(style)}">{escape(word)}</span>{reason}'


def _heading(report: ValidationReport) -> str:
    """Validate: parity and latency, each with its own verdict (``ValidationReport.verdicts``).
    Bench: latency only, so no parity verdict; a badge says whether the numbers are trustworthy."""
    arch = escape(str(report.model.get("arch")))
    if not is_bench(report):
        verdicts = '<span class="sep"> · </span>'.join(_verdict(v) for v in report.verdicts)
        warning = inputs_line(report)
        note = f'<p class="muted inputs-warning">{escape(warning)}</p>' if warning else ""
        return f"<h1>rehead validation: {arch} {verdicts}</h1>{note}"
    noisy = report.latency_verdict.status == "inconclusive"
    badge = '<span class="badge inconclusive">INCONCLUSIVE LATENCY</span>' if noisy else ""
    return (
        f'<h1>rehead bench: {arch} <span class="badge info">LATENCY ONLY</span> {badge}</h1>'
        '<p class="muted">parity was not checked in this run</p>'
    )


def render_html(report: ValidationReport) -> str:
    """The full page as a string.

    Args:
        report: the validation report.
    """
    model = report.model
    cached = " (eager reference from the cache)" if report.inputs.get("reference_cached") else ""
    head = (
        _heading(report) + f'<p class="muted">{escape(str(model.get("path")))} — {model.get("num_classes")} classes '
        f"({len(model.get('kept_indices', []))} kept, {len(model.get('new_indices', []))} new) — inputs "
        f"{escape(str(report.inputs.get('source')))} × {report.inputs.get('count')}{cached} — "
        f"{escape(report.created)}</p>"
        '<p id="render-status" class="muted">rendering…</p>'
    )
    body = [head, "<h2>Summary</h2>", _summary(report)]
    if report.failures:
        body += ["<h2>Failures</h2>", _failure_list(report.failures, with_artifact=True)]
    for artifact in report.artifacts:
        if artifact.parity is not None:
            body += [
                f"<h2>Parity: {escape(artifact.name)} {_cls(artifact.parity_status)}</h2>",
                _parity_section(artifact, report),
            ]
    for artifact in report.artifacts:
        if artifact.int8_search:
            body += [f"<h2>INT8 search: {escape(artifact.name)}</h2>", _int8_section(artifact)]
    body += [_latency_section(report), _environment(report)]
    title = "rehead bench" if is_bench(report) else f"rehead validation ({report.headline})"
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{title} — {escape(str(model.get('arch')))}</title><style>{_CSS}</style></head>"
        f'<body data-rendered="pending">{"".join(body)}<script>{_SCRIPT}</script></body></html>\n'
    )
