"""``python -m driftline`` runs the CLI (named ``driftline`` in help and shell completion)."""

from driftline.cli import main

main(prog_name="driftline")
