"""A timing table as text for a terminal: one row per point, footnotes below."""

from __future__ import annotations

from batchlab.timing.table import TimingTable


def format_seconds(seconds: float | None) -> str:
    """``3.2 µs``, ``0.41 ms``, ``12.5 ms``, ``3.40 s``, ``6.1 min``: three significant figures."""
    if seconds is None:
        return "—"
    for limit, scale, unit in ((1e-3, 1e6, "µs"), (1.0, 1e3, "ms"), (120.0, 1.0, "s")):
        if seconds < limit:
            return f"{_three_figures(seconds * scale)} {unit}"
    return f"{_three_figures(seconds / 60.0)} min"


def format_timing_table(table: TimingTable) -> str:
    """Columns: path, device, B, time/update median [q25–q75], time/epoch, updates/epoch,
    extrapolated?, synthetic?; a first column naming the network when the table holds more than
    one (network, data, loss); then what was timed, the devices, and the footnotes that explain
    the flags."""
    workloads = table.workloads()
    several = len(workloads) > 1
    header = ("path", "device", "B", "time/update median [q25–q75]", "time/epoch", "updates/epoch", "extrap.", "synth.")
    header = ("network", *header) if several else header
    rows = []
    for points in table.series().values():
        for p in points:
            rows.append((
                *((p.network_label,) if several else ()),
                p.path,
                p.device,
                f"{p.batch_size:,}",
                f"{format_seconds(p.per_update_median_s)} [{format_seconds(p.per_update_q25_s)}–"
                f"{format_seconds(p.per_update_q75_s)}]",
                format_seconds(p.per_epoch_s) + ("*" if p.extrapolated else ""),
                f"{p.updates_per_epoch:,}",
                "yes*" if p.extrapolated else "no",
                "yes†" if p.synthetic_data else "no",
            ))
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    right = {3, 6} if several else {2, 5}
    lines = []
    for row in (header, *rows):
        cells = [str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(row, widths))]
        lines.append("  ".join(cells).rstrip())
    lines.insert(1, "  ".join("-" * w for w in widths))
    devices = {p.device: p.device_name for p in table.points}
    if workloads:
        lines.append("")
        lines.extend(f"timed: {network} on {data}" + (f", loss {loss}" if loss else "")
                     for network, data, loss in workloads)
    if devices:
        lines.append("")
        lines.extend(f"{device}: {name}" for device, name in devices.items())
    if table.notes:
        lines.append("")
        lines.extend(table.notes)
    return "\n".join(lines)


def _three_figures(value: float) -> str:
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"
