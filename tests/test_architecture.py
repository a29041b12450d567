"""The shape of the code: no import cycles anywhere (the layer contracts themselves are import-linter's, in
``make lint``; a cycle between two modules of one layer is invisible to them, hence this test)."""

from __future__ import annotations

import grimp
import networkx as nx

PACKAGES = ("chains", "analytics", "ml", "bots")


def test_there_is_no_import_cycle() -> None:
    graph = grimp.build_graph(*PACKAGES)
    imports = nx.DiGraph()
    for module in graph.modules:
        for imported in graph.find_modules_directly_imported_by(module):
            imports.add_edge(module, imported)
    cycles = sorted(sorted(c) for c in nx.strongly_connected_components(imports) if len(c) > 1)
    assert cycles == [], "import cycles (a lazy import inside a function counts too):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_graph_is_real() -> None:
    """The cycle test sees the code: a known import is in the graph."""
    graph = grimp.build_graph(*PACKAGES)
    assert "chains.abi.blocks" in graph.find_modules_directly_imported_by("chains.watch.blocks")
