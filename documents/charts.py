"""Bar charts as inline SVG: no JavaScript, no plotting library, the same bytes every time.

WeasyPrint draws inline SVG into the PDF, and browsers show the same markup in the HTML
version, so one chart serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

FONT_STACK = "Noto Sans CJK SC, Noto Sans SC, WenQuanYi Micro Hei, Droid Sans Fallback, sans-serif"
WIDTH, HEIGHT = 340, 170
LEFT, RIGHT, TOP, BOTTOM = 6, 6, 26, 34


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def bar_chart(
    values: Sequence[int],
    labels: Sequence[str],
    *,
    title: str,
    color: str,
    value_label: Callable[[int], str],
    year_labels: Sequence[str] | None = None,
    empty_text: str = "",
) -> Markup:
    """One bar per value, labelled underneath; each bar's value above (or below) it.

    `year_labels[i]`, when not empty, is written under bar i's month label (the first bar
    and each January), so that a 12-month window that crosses a year reads unambiguously.
    """
    if len(values) != len(labels):
        raise ValueError("one label per value")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom_value = min([0, *values])
    top_value = max([0, *values]) or (0 if bottom_value else 1)  # all zero: axis at the bottom
    span = (top_value - bottom_value) or 1

    def y(v: int) -> float:
        return TOP + 10 + (top_value - v) / span * (plot_h - 10)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="{FONT_STACK}" aria-label="{escape(title)}">',
        f'<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        f'<text x="{LEFT}" y="14" font-size="11" font-weight="bold" fill="#1f2937">'
        f"{escape(title)}</text>",
    ]
    base = y(0)
    parts.append(f'<line x1="{LEFT}" y1="{_num(base)}" x2="{WIDTH - RIGHT}" y2="{_num(base)}" '
                 'stroke="#9ca3af" stroke-width="0.8"/>')
    n = max(len(values), 1)
    slot = plot_w / n
    bar_w = slot * 0.66
    for i, (value, label) in enumerate(zip(values, labels, strict=True)):
        x = LEFT + i * slot + (slot - bar_w) / 2
        cx = LEFT + i * slot + slot / 2
        top, bottom = sorted((y(value), base))
        height = max(bottom - top, 0.0)
        if value != 0:
            parts.append(f'<rect x="{_num(x)}" y="{_num(top)}" width="{_num(bar_w)}" '
                         f'height="{_num(max(height, 0.8))}" fill="{color}"/>')
            # a negative bar hangs below the axis: its label goes just above the axis,
            # clear of the month labels underneath
            text_y = top - 3 if value > 0 else base - 3
            parts.append(f'<text x="{_num(cx)}" y="{_num(text_y)}" font-size="7.5" '
                         f'text-anchor="middle" fill="#374151">{escape(value_label(value))}</text>')
        parts.append(f'<text x="{_num(cx)}" y="{HEIGHT - BOTTOM + 14}" font-size="8" '
                     f'text-anchor="middle" fill="#4b5563">{escape(label)}</text>')
        if year_labels and year_labels[i]:
            parts.append(f'<text x="{_num(cx)}" y="{HEIGHT - BOTTOM + 26}" font-size="7.5" '
                         f'text-anchor="middle" fill="#6b7280">{escape(year_labels[i])}</text>')
    if not any(values) and empty_text:
        parts.append(f'<text x="{WIDTH / 2}" y="{_num(TOP + plot_h / 2)}" font-size="10" '
                     f'text-anchor="middle" fill="#6b7280">{escape(empty_text)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
