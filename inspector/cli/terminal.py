"""Terminal output of ``inspector scan``: the end-of-scan summary (rich) and the progress bar.

The CLI owns the terminal; the report package computes (``report.summary.Aggregates``)
and writes files (``report.html``), this module prints.
"""
from __future__ import annotations

import io
import os
import sys
import time
from collections import Counter
from typing import Callable, List, Optional, Tuple

from ..report.format import clean, fmt_bytes, fmt_duration, fmt_int, fmt_ts
from ..report.summary import (BYTES, CUST, FLOWS, SEVERITY_STYLES, SHIP, Aggregates, alert_counts, alert_dest_label,
                              allowed_word, as_int, sorted_alerts)
from ..severity import severity_name, severity_rank

# --------------------------------------------------------------------------------------------
# Terminal summary


def print_summary(console_or_none, stats: dict, aggregates: Aggregates, alerts: Optional[list], site_name: str,
                  out_dir: str, elapsed: float, top: int = 8, incidents: Optional[list] = None) -> None:
    """Print the end-of-scan summary with ``rich`` (plain text when rich is not installed).

    ``console_or_none``: a ``rich.console.Console`` or None for one on stdout.  ``incidents``: the
    run's incidents; when given the summary leads with them, their alerts folded underneath, instead
    of listing alerts one by one."""
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a dependency; keep working without it
        _print_plain(stats, aggregates, alerts or [], site_name, out_dir, elapsed, top, incidents)
        return
    console = console_or_none if console_or_none is not None else Console(highlight=False)
    _print_rich(console, stats or {}, aggregates, alerts or [], site_name, out_dir, elapsed, top, incidents)


#: incidents the terminal lists, and alert lines (one per rule) folded under each
TERMINAL_INCIDENTS = 10
TERMINAL_RULES_PER_INCIDENT = 3


def incident_rows(incidents: list, alerts: list, top: int = TERMINAL_INCIDENTS,
                  rules: int = TERMINAL_RULES_PER_INCIDENT) -> List[Tuple[int, str, str, List[str]]]:
    """(severity rank, severity name, head line, folded lines) per incident shown: the title, then one
    line of figures and one line per rule of its alerts (most severe first, with how many times)."""
    by_id = {a.get("alert_id"): a for a in alerts if isinstance(a, dict) and a.get("alert_id") is not None}
    out = []
    for inc in incidents[:top]:
        if not isinstance(inc, dict):
            continue
        rank = severity_rank(inc.get("severity"))
        recs = inc.get("records") if isinstance(inc.get("records"), dict) else {}
        n = as_int(inc.get("flows"))
        figures = [f"{fmt_int(n)} connection{'' if n == 1 else 's'}", f"{fmt_bytes(inc.get('bytes_out'))} out"]
        if as_int(recs.get("customer")) or as_int(recs.get("shipment")):
            figures.append(f"records {_cs(as_int(recs.get('customer')), as_int(recs.get('shipment')))}")
        figures.append(f"incident {clean(inc.get('incident_id'))}")
        folded = [" \u00b7 ".join(figures)]
        by_sig: Counter = Counter()
        for aid in inc.get("alert_ids") or ():
            a = by_id.get(aid)
            if a is not None:
                al = a.get("alert") or {}
                by_sig[(severity_rank(al.get("severity")), al.get("signature_id"), clean(al.get("signature"), 70))] += 1
        sigs = sorted(by_sig.items(), key=lambda kv: (kv[0][0], -kv[1], str(kv[0][1])))
        for (srank, sid, text), n in sigs[:rules]:
            folded.append(f"{severity_name(srank)} {clean(sid)} {text}" + (f" (\u00d7{n})" if n > 1 else ""))
        if len(sigs) > rules:
            folded.append(f"\u2026 and {len(sigs) - rules} more rules")
        out.append((rank, severity_name(inc.get("severity")), clean(inc.get("title"), 300), folded))
    return out


def _incidents_head(incidents: list, alerts: list) -> str:
    counts: Counter = Counter(severity_rank(i.get("severity")) for i in incidents if isinstance(i, dict))
    sev = ", ".join(f"{counts[k]} {severity_name(k)}" for k in sorted(counts))
    return f"incidents: {len(incidents)}" + (f" ({sev})" if sev else " (none)") + f" from {len(alerts)} alerts"


def _print_incidents_rich(console, incidents: list, alerts: list) -> None:
    from rich.text import Text
    console.print()
    console.print(Text("  " + _incidents_head(incidents, alerts), style="bold"))
    for rank, sev, head, folded in incident_rows(incidents, alerts):
        line = Text("  ")
        line.append(f"{sev:<9}", style=SEVERITY_STYLES.get(rank, ""))
        line.append(head)
        console.print(line)
        for f in folded:
            console.print(Text("             " + f, style="dim"))
    if len(incidents) > TERMINAL_INCIDENTS:
        console.print(Text(f"  \u2026 and {len(incidents) - TERMINAL_INCIDENTS} more (incidents.jsonl, report.html)",
                           style="dim"))


def _summary_lines(stats, agg: Aggregates, site_name, elapsed) -> List[str]:
    lines = []
    files = stats.get("files") or []
    lines.append(f"{fmt_int(stats.get('packets_read'))} packets, {fmt_bytes(stats.get('bytes_read'))} read"
                 + (f" from {len(files)} file{'s' if len(files) != 1 else ''}" if files else "")
                 + f" in {elapsed:.1f}s")
    if agg.first_ts is not None:
        lines.append(f"capture {fmt_ts(agg.first_ts)} \u2192 {fmt_ts(agg.last_ts)} UTC "
                     f"({fmt_duration((agg.last_ts or agg.first_ts) - agg.first_ts)})")
    outcomes = stats.get("outcomes") or {}
    other = {k: v for k, v in outcomes.items() if k != "decoded"}
    if other:
        lines.append("not decoded: " + ", ".join(f"{clean(k)} {fmt_int(v)}" for k, v in
                                                 sorted(other.items(), key=lambda kv: -kv[1])[:6]))
    dirs = ", ".join(f"{clean(k)} {fmt_int(v)}" for k, v in sorted(agg.directions.items()))
    lines.append(f"flows {fmt_int(agg.flows)}" + (f": {dirs}" if dirs else ""))
    if agg.out_flows:
        lines.append(f"leaving the site: {fmt_bytes(agg.out_bytes)} in {fmt_int(agg.out_flows)} connections to "
                     f"{fmt_int(len(agg.dst))} destinations; {fmt_bytes(agg.out_other_bytes)} to destinations "
                     f"not on the allow list")
        if agg.out_customer or agg.out_shipment:
            lines.append(f"records leaving: {fmt_int(agg.out_customer)} customer, "
                         f"{fmt_int(agg.out_shipment)} shipment")
    weirds = stats.get("weirds") or {}
    if weirds:
        wc = Counter(weirds)
        lines.append("weird: " + ", ".join(f"{clean(k)} {v}" for k, v in wc.most_common(6)))
    return lines


def _allow_mark(allowed) -> str:
    return {"allowed": "yes", "not allowed": "no", "partly": "partly"}.get(allowed_word(allowed), "-")


def _cs(c, s) -> str:
    """``customer / shipment`` record counts, blank when both are zero."""
    return f"{fmt_int(c)} / {fmt_int(s)}" if c or s else ""


def _org_rows(agg: Aggregates, top: int):
    rows = []
    for org, r in agg.top_orgs(top):
        m = agg.org.meta.get(org, {})
        ccs = m.get("countries") or Counter()
        cc = ",".join(clean(c) for c, _ in ccs.most_common(3))
        rows.append((clean(org, 40), cc, fmt_int(r[FLOWS]), fmt_bytes(r[BYTES]), _cs(r[CUST], r[SHIP]),
                     _allow_mark(m.get("allowed", ()))))
    return rows


def _dst_rows(agg: Aggregates, top: int, by: int = BYTES):
    rows = []
    for name, r in agg.top_destinations(top, by=by):
        m = agg.dst.meta.get(name, {})
        rows.append((clean(name, 60), clean(m.get("org"), 40), fmt_bytes(r[BYTES]), _cs(r[CUST], r[SHIP]),
                     _allow_mark(m.get("allowed", ()))))
    return rows


def _alert_rows(alerts, top: int):
    rows = []
    for a in sorted_alerts(alerts)[:top]:
        al = a.get("alert") or {}
        recs = a.get("records") or {}
        rows.append((severity_rank(al.get("severity")), severity_name(al.get("severity")),
                     clean(al.get("signature"), 80),
                     f"{clean(a.get('src_ip'))} \u2192 {alert_dest_label(a)}",
                     fmt_bytes(a.get("bytes_out")), _cs(as_int(recs.get("customer")), as_int(recs.get("shipment")))))
    return rows


def _outputs(out_dir: str) -> str:
    try:
        names = sorted(n for n in os.listdir(out_dir) if not n.endswith(".tmp"))
    except OSError:
        names = []
    return f"outputs in {clean(out_dir)}/: " + " ".join(clean(n) for n in names)


def _print_rich(console, stats, agg: Aggregates, alerts, site_name, out_dir, elapsed, top, incidents=None) -> None:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    console.rule(Text(f"inspector scan \u00b7 site {clean(site_name)}", style="bold"))
    for line in _summary_lines(stats, agg, site_name, elapsed):
        console.print(Text("  " + line))

    allow_styles = {"yes": "green", "no": "red", "partly": "yellow"}

    def widths(headers, rows, flex):
        """Column widths: numbers and short columns as wide as their content, the ``flex`` text
        columns share what is left of the console width (each at least 12).  A gap between
        columns is three cells (padding on either side and the invisible box divider)."""
        natural = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(headers)]
        room = console.width - 3 * (len(headers) - 1) - sum(w for i, w in enumerate(natural) if i not in flex)
        want = sum(natural[i] for i in flex)
        out = list(natural)
        if flex and want > room:
            for i in flex:
                out[i] = max(12, min(natural[i], room * natural[i] // max(1, want)))
        return out

    def table(title, headers, rows, right=(), flex=(0,)):
        """Numbers never wrap or shrink; the text columns in ``flex`` are truncated to fit."""
        t = Table(title=Text(title, style="bold"), title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  show_edge=False)
        for i, (h, w) in enumerate(zip(headers, widths(headers, rows, flex))):
            t.add_column(h, justify="right" if i in right else "left", no_wrap=True, overflow="ellipsis", width=w)
        for row in rows:
            t.add_row(*(Text(c, style=allow_styles.get(c, "") if headers[i] == "allowed" else "")
                        for i, c in enumerate(row)))
        return t

    if agg.out_flows:
        console.print()
        console.print(table("Leaving the site, by destination organisation",
                            ["organisation", "country", "conns", "bytes out", "cust / ship", "allowed"],
                            _org_rows(agg, top), right=(2, 3, 4)))
        crow = [(clean(cc), fmt_int(r[FLOWS]), fmt_bytes(r[BYTES]), _cs(r[CUST], r[SHIP]))
                for cc, r in agg.top_countries(top)]
        console.print(table("By country", ["country", "conns", "bytes out", "cust / ship"], crow,
                            right=(1, 2, 3), flex=()))
        console.print(table("Top destinations by bytes out",
                            ["destination", "organisation", "bytes out", "cust / ship", "allowed"],
                            _dst_rows(agg, top), right=(2, 3), flex=(0, 1)))
        if agg.out_customer or agg.out_shipment:
            rrow = [r for r in _dst_rows(agg, top, by=CUST) if r[3]]
            console.print(table("Records leaving (customer / shipment), by destination",
                                ["destination", "organisation", "bytes out", "cust / ship", "allowed"], rrow,
                                right=(2, 3), flex=(0, 1)))
    if incidents is not None:        # the story first: alerts folded under their incidents
        _print_incidents_rich(console, incidents, alerts)
        console.print(Text("  " + _outputs(out_dir), style="dim"))
        return
    counts = alert_counts(alerts)
    line = Text("  alerts: ", style="bold")
    if not counts:
        line.append("none", style="green")
    else:
        parts = []
        for rank in (1, 2, 3, 4, 5):
            if counts.get(rank):
                parts.append((f"{counts[rank]} {severity_name(rank)}", SEVERITY_STYLES.get(rank, "")))
        for i, (txt, style) in enumerate(parts):
            if i:
                line.append(" \u00b7 ")
            line.append(txt, style=style)
    console.print()
    console.print(line)
    if alerts:
        rows = _alert_rows(alerts, top)
        t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        heads = ["sev", "signature", "source \u2192 destination", "bytes out", "cust / ship"]
        for i, (h, w) in enumerate(zip(heads, widths(heads, [r[1:] for r in rows], (1, 2)))):
            t.add_column(h, justify="right" if i >= 3 else "left", overflow="ellipsis", no_wrap=True, width=w)
        for rank, sev, sig, path, b, recs in rows:
            t.add_row(Text(sev, style=SEVERITY_STYLES.get(rank, "")), Text(sig), Text(path), Text(b), Text(recs))
        console.print(t)
        if len(alerts) > top:
            console.print(Text(f"  \u2026 and {len(alerts) - top} more (alerts.jsonl, report.html)", style="dim"))
    console.print(Text("  " + _outputs(out_dir), style="dim"))


def _print_plain(stats, agg, alerts, site_name, out_dir, elapsed, top, incidents=None) -> None:  # pragma: no cover
    p = print
    p(f"inspector scan: site {clean(site_name)}")
    for line in _summary_lines(stats, agg, site_name, elapsed):
        p("  " + line)
    for title, rows in (("by destination organisation", _org_rows(agg, top)),
                        ("top destinations", _dst_rows(agg, top))):
        if rows:
            p(f"  {title}:")
            for r in rows:
                p("    " + "  ".join(x for x in r if x))
    if incidents is not None:
        p("  " + _incidents_head(incidents, alerts))
        for _rank, sev, head, folded in incident_rows(incidents, alerts):
            p(f"    [{sev}] {head}")
            for f in folded:
                p(f"        {f}")
    else:
        counts = alert_counts(alerts)
        p("  alerts: " + (", ".join(f"{counts[k]} {severity_name(k)}" for k in sorted(counts)) or "none"))
        for r in _alert_rows(alerts, top):
            p("    " + "  ".join(x for x in r[1:] if x))
    p("  " + _outputs(out_dir))


# --------------------------------------------------------------------------------------------
# Progress


def _raw_file(reader) -> Optional[io.IOBase]:
    """The regular file under a CaptureReader's (possibly decompressing) stream, or None."""
    s = getattr(reader, "stream", None)
    for _ in range(8):
        if s is None:
            return None
        if isinstance(s, io.IOBase):
            try:
                if _is_regular(s):
                    return s
            except (OSError, ValueError, io.UnsupportedOperation):
                return None
        s = getattr(s, "raw", None)
    return None


def _is_regular(f) -> bool:
    import stat
    return stat.S_ISREG(os.fstat(f.fileno()).st_mode)


class Progress:
    """Progress callback for ``run_scan(progress=...)``: ``progress(path, packets, reader)``.

    Shows a rich progress bar (file name, position in the file, packets) on stderr, but only
    when stderr is a terminal and only once the scan has run for ``delay`` seconds: short
    scans print nothing.  Call ``done()`` (or use it as a context manager) at the end."""

    def __init__(self, enabled: Optional[bool] = None, console=None, delay: float = 2.0,
                 clock: Callable[[], float] = time.monotonic):
        if enabled is None:
            enabled = _stderr_is_tty()
        self.enabled = bool(enabled)
        self.console = console
        self.delay = delay
        self.clock = clock
        self.start = clock()
        self.shown = False
        self._bar = None
        self._task = None
        self._path = None
        self._files = 0
        self._total = None
        self._raw = None

    def __call__(self, path, packets, reader=None) -> None:
        if not self.enabled:
            return
        if path != self._path:
            self._path = path
            self._files += 1
            self._raw = _raw_file(reader) if reader is not None else None
            try:
                self._total = os.fstat(self._raw.fileno()).st_size if self._raw is not None else None
            except (OSError, ValueError):
                self._total = None
            if self._bar is not None:
                self._new_task()
        if self._bar is None:
            if self.clock() - self.start < self.delay:
                return
            if not self._open():
                return
        pos = None
        if self._raw is not None:
            try:
                pos = self._raw.tell()
            except (OSError, ValueError):
                pos = None
        kw = {"packets": packets}
        if pos is not None and self._total:
            kw["completed"] = min(pos, self._total)
        self._bar.update(self._task, **kw)

    def _open(self) -> bool:
        try:
            from rich.console import Console
            from rich.progress import (BarColumn, Progress as RichProgress, SpinnerColumn, TaskProgressColumn,
                                       TextColumn, TimeElapsedColumn)
        except ImportError:  # pragma: no cover
            self.enabled = False
            return False
        console = self.console if self.console is not None else Console(stderr=True)
        self._bar = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                 TaskProgressColumn(), TextColumn("{task.fields[packets]:>12,} packets"),
                                 TimeElapsedColumn(), console=console, transient=True)
        self._bar.start()
        self.shown = True
        self._new_task()
        return True

    def _new_task(self) -> None:
        if self._task is not None:
            self._bar.remove_task(self._task)
        from rich.markup import escape
        name = escape(clean(os.path.basename(str(self._path)) or str(self._path), 40))
        desc = f"file {self._files}: {name}" if self._files > 1 else name
        self._task = self._bar.add_task(desc, total=self._total, packets=0)

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    close = done

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.done()
        return False


def _stderr_is_tty() -> bool:
    try:
        return sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
