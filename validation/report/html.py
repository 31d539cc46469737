"""A self-contained HTML page: tables, inline PNG plots, and a render marker for browser checks.

Once the page has loaded, a small script counts the images that decoded (``naturalWidth > 0``)
and sets ``<body data-rendered="ok|broken">`` plus the text of ``#render-status``, so a
headless browser can confirm that the plots render.
"""

from __future__ import annotations

from html import escape
from typing import Any

from validation.report import plots
from validation.report._format import ms, num, pct, size
from validation.result import ArtifactResult, ValidationReport

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#1d2330;
background:#fafbfc}
h1{font-size:1.5rem;margin-bottom:.2rem}
h2{margin-top:2rem;border-bottom:1px solid #d8dde6;padding-bottom:.3rem}
h3{margin-bottom:.4rem} table{border-collapse:collapse;margin:.6rem 0;font-size:.85rem;background:#fff}
th,td{border:1px solid #d8dde6;padding:.25rem .55rem;text-align:right} th{background:#eef1f6}
td.l,th.l{text-align:left} .pass{color:#1a7f37;font-weight:600} .fail{color:#c62828;font-weight:600}
.inconclusive{color:#b26a00;font-weight:600} .skipped,.muted{color:#777}
.badge{display:inline-block;padding:.15rem .6rem;border-radius:.8rem;color:#fff;font-weight:600}
.badge.pass{background:#1a7f37;color:#fff} .badge.fail{background:#c62828;color:#fff}
.badge.inconclusive{background:#b26a00;color:#fff}
img{max-width:100%;border:1px solid #e3e7ee;background:#fff}
.plots{display:flex;flex-wrap:wrap;gap:1rem} ul.fail li{color:#c62828} code{font-size:.85em}
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


def _table(headers: list[str], rows: list[list[str]], left: int = 1) -> str:
    head = "".join(f'<th class="{"l" if i < left else ""}">{escape(h)}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"l" if i < left else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _summary(report: ValidationReport) -> str:
    rows = []
    for a in report.artifacts:
        worst = a.parity.worst("all") if a.parity else None
        worst_new = a.parity.worst("new") if a.parity else None
        lat = ", ".join(
            f"b{bs}: {ms(s.p50_ms)} / {ms(s.p99_ms)}{'' if s.conclusive else ' ?'}"
            for bs, s in a.latency.items()
        )
        speed = ", ".join(f"b{bs}: {v:.2f}×" for bs, v in a.speedup.items() if v)
        rows.append(
            [
                escape(a.name),
                _cls(a.status),
                escape(f"{a.kind}/{a.precision}"),
                escape(a.preset or "—"),
                size(a.size_bytes),
                num(worst.max_abs) if worst else "—",
                num(worst_new.max_abs) if worst_new else "—",
                pct(worst.top1) if worst else "—",
                escape(lat or "—"),
                escape(speed or "—"),
            ]
        )
    return _table(
        [
            "artifact",
            "status",
            "kind",
            "preset",
            "size",
            "max|Δ| all",
            "max|Δ| new",
            "top-1",
            "p50 / p99 ms",
            "speed-up",
        ],
        rows,
        left=4,
    )


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
            "top-1",
            "top-5",
            "max KL",
            "NaN/Inf",
            "over tol",
            "verdict",
        ],
        rows,
        left=3,
    )
    parts = [f"<p>tolerance: <code>{escape(parity.tolerance.source)}</code></p>", table]
    if parity.failures:
        parts.append(
            '<ul class="fail">' + "".join(f"<li>{escape(f)}</li>" for f in parity.failures) + "</ul>"
        )
    names = report.model.get("class_names", [])
    new = set(report.model.get("new_indices", []))
    images = [plots.error_histogram(a.name, parity)]
    if names and any(b.per_class for b in parity.batches):
        images.append(plots.per_class_error(a.name, parity, names, new))
    loc = parity.localisation
    if loc:
        parts.append(f"<p><b>localisation</b>: {escape(loc['status'])} — {escape(loc.get('reason', ''))}</p>")
        trace_plot = plots.localisation_trace(a.name, loc)
        if trace_plot:
            images.append(trace_plot)
    parts.append(
        '<div class="plots">' + "".join(f'<img alt="plot" src="{src}">' for src in images) + "</div>"
    )
    return "".join(parts)


def _latency_section(report: ValidationReport) -> str:
    batches = sorted({bs for a in report.artifacts for bs in a.latency} | set(report.reference_latency))
    if not batches:
        return ""
    rows = []
    entries: list[tuple[str, Any, Any]] = [("eager-fp32", report.reference_latency, None)]
    entries += [(a.name, a.latency, a.speedup) for a in report.artifacts]
    for name, lat, speed in entries:
        for bs in batches:
            s = lat.get(bs)
            if s is None:
                continue
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
                    f"{speed[bs]:.2f}×" if speed and speed.get(bs) else ("1.00×" if speed is None else "—"),
                    _cls("pass" if s.conclusive else "inconclusive"),
                ]
            )
    parts = [
        "<h2>Latency</h2>",
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
                "speed-up",
                "status",
            ],
            rows,
        ),
    ]
    cold = [
        [
            escape(a.name),
            ms(a.cold_start["load_ms"]),
            ms(a.cold_start["first_run_ms"]),
            ms(a.cold_start["total_ms"]),
        ]
        for a in report.artifacts
        if a.cold_start
    ]
    if cold:
        parts += ["<h3>Cold start</h3>", _table(["artifact", "load ms", "first run ms", "total ms"], cold)]
    head = report.head_latency
    if head:
        hrows = [
            [
                str(r["batch_size"]),
                ms(r["old_head"]["p50_ms"]),
                ms(r["old_head"]["p99_ms"]),
                ms(r["new_head"]["p50_ms"]),
                ms(r["new_head"]["p99_ms"]),
                f"{r['new_over_old']:.2f}×" if r.get("new_over_old") else "—",
            ]
            for r in head["batches"]
        ]
        parts += [
            f"<h3>Head on its own (eager): old {escape(head['shapes']['old_head'])} vs new "
            f"{escape(head['shapes']['new_head'])}</h3>",
            _table(["batch", "old p50 ms", "old p99 ms", "new p50 ms", "new p99 ms", "new / old"], hrows),
        ]
    parts.append(
        '<div class="plots">'
        + "".join(
            f'<img alt="latency plot" src="{plots.latency_distribution(report, bs)}">' for bs in batches
        )
        + "</div>"
    )
    return "".join(parts)


def _environment(report: ValidationReport) -> str:
    env = dict(report.environment)
    versions = env.pop("versions", {})
    rows = [[escape(str(k)), escape(str(v))] for k, v in env.items()]
    rows += [[escape(f"version {k}"), escape(str(v))] for k, v in versions.items()]
    rows += [[escape(f"setting {k}"), escape(str(v))] for k, v in report.settings.items()]
    rows += [[escape(f"timing {k}"), f"{v:.2f} s"] for k, v in report.timing.items()]
    return "<h2>Environment and settings</h2>" + _table(["key", "value"], rows, left=2)


def render_html(report: ValidationReport) -> str:
    """The full page as a string."""
    model = report.model
    head = (
        f"<h1>rehead validation: {escape(str(model.get('arch')))} "
        f'<span class="badge {escape(report.status)}">{escape(report.status.upper())}</span></h1>'
        f'<p class="muted">{escape(str(model.get("path")))} — {model.get("num_classes")} classes '
        f"({len(model.get('kept_indices', []))} kept, {len(model.get('new_indices', []))} new) — inputs "
        f"{escape(str(report.inputs.get('source')))} × {report.inputs.get('count')} — "
        f"{escape(report.created)}</p>"
        '<p id="render-status" class="muted">rendering…</p>'
    )
    body = [head, "<h2>Summary</h2>", _summary(report)]
    if report.failures:
        body.append('<ul class="fail">' + "".join(f"<li>{escape(f)}</li>" for f in report.failures) + "</ul>")
    for artifact in report.artifacts:
        if artifact.parity is not None:
            body += [
                f"<h2>Parity: {escape(artifact.name)} {_cls(artifact.parity_status)}</h2>",
                _parity_section(artifact, report),
            ]
    body += [_latency_section(report), _environment(report)]
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>rehead validation — {escape(str(model.get('arch')))}</title><style>{_CSS}</style></head>"
        f'<body data-rendered="pending">{"".join(body)}<script>{_SCRIPT}</script></body></html>\n'
    )
