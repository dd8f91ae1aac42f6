"""``multifair plugins``: the loaded plugins, their encoders, fairness methods and data sources, and any
plugin that failed.

Exit code 0 when every plugin loaded; 1 when a plugin failed to load or two plugins register the same
encoder, method or data source name (everything is still listed).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from monai_multifair.plugins import MODALITIES


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``plugins`` sub-command."""
    parser = subparsers.add_parser(
        "plugins",
        help="list plugins, their encoders, fairness methods (with options) and data sources, and failures",
        description=(
            "List the loaded plugins (name, version, distribution, hooks), the encoders they provide "
            "(name, modality, description), the fairness methods they provide (name, kind, options with "
            "defaults, description), the data sources they provide (name, modalities, how compare may re-split "
            "them, description), names claimed by several plugins, and plugins that failed to load. "
            "Exits with 1 when there is a failure or a conflict. Environment: "
            "MULTIFAIR_DISABLE_PLUGIN_AUTOLOAD=1, MULTIFAIR_PLUGINS=mod,..., MULTIFAIR_DISABLE_PLUGINS=name,..., "
            "MULTIFAIR_TRACE_PLUGINS=1."
        ),
    )
    parser.add_argument("--modality", choices=sorted(MODALITIES), help="list only encoders of this modality")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.set_defaults(func=run)


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    lines = []
    for row in (header, *rows):
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths)]
        lines.append("  " + "  ".join(cells).rstrip())
    return lines


def run(args: argparse.Namespace) -> int:
    """Print the listing; return 1 if any plugin failed or any name is claimed twice."""
    from monai_multifair.cli import EXIT_FAILURE, EXIT_OK
    from monai_multifair.plugins import get_plugin_manager

    pm = get_plugin_manager()
    registry = pm.encoder_registry()
    plugins = pm.plugin_infos()
    encoders = registry.list(args.modality)
    conflicts = registry.conflicts
    methods = pm.method_registry().list()
    method_conflicts = pm.method_registry().conflicts
    sources = pm.data_source_registry().list()
    source_conflicts = pm.data_source_registry().conflicts
    failures = pm.failures()
    if args.json:
        document = {
            "plugins": [info.describe() for info in plugins],
            "encoders": [spec.describe() for spec in encoders],
            "methods": [spec.describe() for spec in methods],
            "conflicts": {name: list(owners) for name, owners in sorted(conflicts.items())},
            "method_conflicts": {name: list(owners) for name, owners in sorted(method_conflicts.items())},
            "data_sources": [spec.describe() for spec in sources],
            "data_source_conflicts": {
                name: list(owners) for name, owners in sorted(source_conflicts.items())
            },
            "failures": [failure.describe() for failure in failures],
        }
        print(json.dumps(document, indent=2))
    else:
        out = [f"Plugins ({len(plugins)}):"]
        out += _table(
            ("NAME", "VERSION", "DISTRIBUTION", "SOURCE", "HOOKS"),
            [
                (p.name, p.version or "-", p.distribution or "-", p.source, ", ".join(p.hooks) or "-")
                for p in plugins
            ],
        )
        scope = f" of modality {args.modality}" if args.modality else ""
        out += ["", f"Encoders{scope} ({len(encoders)}):"]
        out += _table(
            ("NAME", "MODALITY", "PLUGIN", "DESCRIPTION"),
            [(s.name, s.modality, s.plugin, s.description or "-") for s in encoders],
        )
        out += ["", f"Fairness methods ({len(methods)}):"]
        out += _table(
            ("NAME", "KIND", "PLUGIN", "DESCRIPTION"),
            [(s.name, s.kind, s.plugin, s.description or "-") for s in methods],
        )
        for spec in methods:
            options = spec.describe()["options"]
            shown = ", ".join(f"{k}={v}" for k, v in options.items()) if options else "none"
            out.append(f"    {spec.name} options: {shown}")
        out += ["", f"Data sources ({len(sources)}):"]
        out += _table(
            ("NAME", "MODALITIES", "SPLIT", "PLUGIN", "DESCRIPTION"),
            [
                (
                    s.name,
                    "set by data." + s.name if callable(s.modalities) else ", ".join(s.modalities),
                    s.split,
                    s.plugin,
                    s.description or "-",
                )
                for s in sources
            ],
        )
        if conflicts:
            out += ["", f"Encoder names registered by more than one plugin ({len(conflicts)}), not usable:"]
            out += [f"  {name}: {', '.join(owners)}" for name, owners in sorted(conflicts.items())]
        if method_conflicts:
            out += [
                "",
                f"Method names registered by more than one plugin ({len(method_conflicts)}), not usable:",
            ]
            out += [f"  {name}: {', '.join(owners)}" for name, owners in sorted(method_conflicts.items())]
        if source_conflicts:
            out += [
                "",
                f"Data source names registered by more than one plugin ({len(source_conflicts)}), not usable:",
            ]
            out += [f"  {name}: {', '.join(owners)}" for name, owners in sorted(source_conflicts.items())]
        if failures:
            out += ["", f"Plugins that failed to load ({len(failures)}):"]
            out += [f"  {failure}" for failure in failures]
        print("\n".join(out))
    if failures or conflicts or method_conflicts or source_conflicts:
        print(
            f"multifair plugins: {len(failures)} plugin failure(s), {len(conflicts)} encoder name conflict(s), "
            f"{len(method_conflicts)} method name conflict(s), {len(source_conflicts)} data source name "
            "conflict(s)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    return EXIT_OK
