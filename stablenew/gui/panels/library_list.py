"""LibraryList: one sidebar list of presets, packs or profiles; broken rows keep their error as tooltip."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QPalette
from PySide6.QtWidgets import QListWidget, QListWidgetItem, QStyle, QWidget

from stablenew.controller.library_controller import ItemKind, LibraryItem

KeyRole = Qt.ItemDataRole.UserRole


class LibraryList(QListWidget):
    """One list of library rows; broken rows are marked and explain themselves in the tooltip."""

    def __init__(self, kind: ItemKind, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.kind = kind
        self.setObjectName(f"{kind.value}List")
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self._warning = self.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)

    def show_items(self, items: list[LibraryItem]) -> None:
        current = self.current_key()
        self.clear()
        muted = self.palette().brush(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text)
        for row in items:
            label = row.name + ("  (shipped)" if row.read_only else "")
            item = QListWidgetItem(label)
            item.setData(KeyRole, row.key)
            tip = [row.name]
            if row.description:
                tip.append(row.description)
            if row.detail:
                tip.append(row.detail)
            if row.tags:
                tip.append("Tags: " + ", ".join(row.tags))
            if row.problem:
                tip.append(row.problem)
            if row.broken:
                item.setIcon(self._warning)
                item.setForeground(QBrush(muted))
                tip.insert(1, "This file cannot be used:")
            elif row.problem:
                item.setIcon(self._warning)
            item.setToolTip("\n".join(tip))
            self.addItem(item)
            if row.key == current:
                self.setCurrentItem(item)

    def current_key(self) -> str:
        item = self.currentItem()
        return str(item.data(KeyRole)) if item is not None else ""

    def select_key(self, key: str) -> None:
        for row in range(self.count()):
            if self.item(row).data(KeyRole) == key:
                self.setCurrentRow(row)
                return
