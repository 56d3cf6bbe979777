"""The font of the charts: a CJK font when the system has one, so that Chinese labels and
Chinese deal, tranche and trigger names are legible; otherwise matplotlib's default with one
warning."""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable

from matplotlib import font_manager

CJK_FONTS = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "Source Han Sans CN",
    "WenQuanYi Zen Hei",
    "WenQuanYi Micro Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "Hiragino Sans GB",
    "Heiti SC",
    "STHeiti",
    "Noto Sans CJK TC",
    "Noto Sans CJK JP",
    "Source Han Sans",
    "Arial Unicode MS",
)
"""Font families looked for, in order of preference (simplified Chinese first)."""

_CJK = re.compile("[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_warned = False


class FontWarning(UserWarning):
    """No CJK font was found: Chinese text would be drawn as empty boxes."""


def cjk_font() -> str | None:
    """The first installed family of :data:`CJK_FONTS` known to matplotlib's font manager, or
    None.

    A font file added later with ``matplotlib.font_manager.fontManager.addfont(path)`` is found
    on the next call.
    """
    available = {f.name for f in font_manager.fontManager.ttflist}
    return next((name for name in CJK_FONTS if name in available), None)


def has_cjk(texts: Iterable[str]) -> bool:
    """Whether any of ``texts`` contains a Chinese, Japanese or Korean character."""
    return any(_CJK.search(t) for t in texts)


def warn_no_cjk_font(what: str) -> None:
    """Warn, once per session, that ``what`` needs a CJK font and none is installed."""
    global _warned
    if _warned:
        return
    _warned = True
    warnings.warn(
        f"no CJK font found for {what} (looked for {', '.join(CJK_FONTS[:6])}, ...): Chinese "
        "labels fall back to English and Chinese names may show as boxes; install one (Debian/"
        "Ubuntu: apt-get install fonts-noto-cjk) or register a font file with "
        "matplotlib.font_manager.fontManager.addfont(path)",
        FontWarning,
        stacklevel=3,
    )
