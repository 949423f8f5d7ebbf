"""A custom import-linter contract: forbid submodules of an external package.

import-linter's own `forbidden` contract sees external packages only as a whole (grimp
squashes `PySide6.QtWidgets` to `PySide6`), but controllers may use QtCore and must not use
QtWidgets/QtGui. This contract reads the import lines grimp records to tell them apart.
"""

from __future__ import annotations

from importlinter.domain import fields
from importlinter.domain.contract import Contract, ContractCheck
from importlinter.domain.imports import Module


class ForbiddenSubmodulesContract(Contract):
    """Modules in `source_modules` must not import any of `forbidden_submodules`."""

    type_name = "forbidden_submodules"

    source_modules = fields.ListField(subfield=fields.ModuleField())
    forbidden_submodules = fields.ListField(subfield=fields.StringField())

    def check(self, graph, verbose: bool) -> ContractCheck:
        forbidden = [str(name) for name in self.forbidden_submodules]  # type: ignore[attr-defined]
        roots = {name.split(".")[0] for name in forbidden}
        violations = []
        for source in self.source_modules:  # type: ignore[attr-defined]
            source_name = source.name if isinstance(source, Module) else str(source)
            importers = {source_name} | set(graph.find_descendants(source_name))
            for importer in sorted(importers):
                for root in roots:
                    if root not in graph.modules:
                        continue
                    for detail in graph.get_import_details(importer=importer, imported=root):
                        line = detail["line_contents"]
                        hit = next((f for f in forbidden if _mentions(line, f)), None)
                        if hit:
                            violations.append((importer, detail["line_number"], line, hit))
        return ContractCheck(kept=not violations, metadata={"violations": violations})

    def render_broken_contract(self, check: ContractCheck) -> None:
        from importlinter.application import output

        for importer, line_number, line, hit in check.metadata["violations"]:
            output.print_error(f"{importer}:{line_number} imports {hit}: {line}", bold=False)
            output.new_line()


def _mentions(line: str, dotted: str) -> bool:
    root, _, sub = dotted.partition(".")
    compact = " ".join(line.replace(",", " , ").split())
    if f"{dotted}" in compact.replace(" ", "") and compact.startswith(("import", "from")):
        return True
    # from PySide6 import QtWidgets / from PySide6 import QtCore, QtGui
    if compact.startswith(f"from {root} import"):
        names = compact[len(f"from {root} import"):].replace("(", " ").replace(")", " ")
        return sub in {n.strip().split(" as ")[0] for n in names.split(",")}
    return False
