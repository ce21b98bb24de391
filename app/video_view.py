"""The video widget: paints the latest frame scaled to the widget with its aspect ratio kept (black bars), and the HUD.

Painting only: the frame arrives as a QImage that owns its pixels (the worker's copy), `set_frame` keeps it and
asks for a repaint; Qt coalesces repaints, so a burst of frames costs one paint. The HUD (text lines) is painted
over the video's top-left corner at screen resolution, so it stays legible whatever the source size, and stays out
of snapshots and recordings. Before the first frame, and after a failure, it shows a text in the middle.
"""

from __future__ import annotations

from PyQt6.QtCore import QRect, QSize, Qt, pyqtSignal
from PyQt6.QtGui import QColor, QFontDatabase, QImage, QMouseEvent, QPainter, QPaintEvent
from PyQt6.QtWidgets import QSizePolicy, QWidget

BACKGROUND = QColor(16, 16, 16)
TEXT_COLOR = QColor(200, 200, 200)
HUD_BACKGROUND = QColor(0, 0, 0, 160)
HUD_TEXT = QColor(255, 255, 255)
HUD_MARGIN = 8  # px between the video corner, the HUD box and its text


def fit_rect(image: QSize, area: QRect) -> QRect:
    """The largest rectangle of `image`'s aspect ratio inside `area`, centred in it (px)."""
    size = image.scaled(area.size(), Qt.AspectRatioMode.KeepAspectRatio)
    x = area.x() + (area.width() - size.width()) // 2
    y = area.y() + (area.height() - size.height()) // 2
    return QRect(x, y, size.width(), size.height())


class VideoView(QWidget):
    """Shows one QImage at a time, scaled to fit, aspect kept.

    Signals:
        clicked(float, float): a left click on the frame, in the frame's own pixels (source resolution).
    """

    clicked = pyqtSignal(float, float)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._image: QImage | None = None
        self._hud: list[str] = []
        self._text = ""
        self.setMinimumSize(320, 180)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)  # every pixel is painted: skip the erase
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)  # focused, it leaves Space / arrows to the shortcuts

    @property
    def image(self) -> QImage | None:
        """The frame on screen (source resolution), or None."""
        return self._image

    @property
    def hud(self) -> list[str]:
        """The HUD lines on screen."""
        return list(self._hud)

    def set_frame(self, image: QImage, hud: list[str] | None = None) -> None:
        """Show `image` (kept, not copied: it must own its pixels) with the `hud` lines (None: no HUD)."""
        self._image, self._hud, self._text = image, list(hud or []), ""
        self.update()

    def set_text(self, text: str, clear: bool = False) -> None:
        """Show `text` in the middle (over the last frame unless `clear`)."""
        self._text = text
        if clear:
            self._image = None
        self.update()

    def image_point(self, x: float, y: float) -> tuple[float, float] | None:
        """Widget point -> frame pixel (x, y), or None off the frame."""
        if self._image is None or self._image.isNull():
            return None
        target = fit_rect(self._image.size(), self.rect())
        if not target.contains(int(x), int(y)):
            return None
        return ((x - target.x()) * self._image.width() / target.width(),
                (y - target.y()) * self._image.height() / target.height())

    def mousePressEvent(self, event: QMouseEvent | None) -> None:
        if event is not None and event.button() == Qt.MouseButton.LeftButton:
            point = self.image_point(event.position().x(), event.position().y())
            if point is not None:
                self.clicked.emit(*point)
        super().mousePressEvent(event)

    def sizeHint(self) -> QSize:
        return QSize(960, 540)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        if self._image is not None and not self._image.isNull():
            target = fit_rect(self._image.size(), self.rect())
            painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
            painter.drawImage(target, self._image)
            if self._hud:
                self._paint_hud(painter, target)
        if self._text:
            painter.setPen(TEXT_COLOR)
            painter.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self._text)
        painter.end()

    def _paint_hud(self, painter: QPainter, video: QRect) -> None:
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont)
        painter.setFont(font)
        metrics = painter.fontMetrics()
        width = max(metrics.horizontalAdvance(line) for line in self._hud) + 2 * HUD_MARGIN
        height = metrics.lineSpacing() * len(self._hud) + 2 * HUD_MARGIN - metrics.leading()
        box = QRect(video.x() + HUD_MARGIN, video.y() + HUD_MARGIN, width, height).intersected(video)
        painter.fillRect(box, HUD_BACKGROUND)
        painter.setPen(HUD_TEXT)
        for i, line in enumerate(self._hud):
            y = box.y() + HUD_MARGIN + metrics.ascent() + i * metrics.lineSpacing()
            painter.drawText(box.x() + HUD_MARGIN, y, line)
