"""socialcredit: an inspectable social credit system, run on a simulated society, for study and teaching."""

from socialcredit.catalog import Catalog, default_catalog, load_catalog
from socialcredit.decisions import Decision, Standing, decide, standing
from socialcredit.engine import Engine, RunSummary
from socialcredit.explanations import Explanation, explain
from socialcredit.rulebook import Rulebook, RulebookSet, shipped_layers
from socialcredit.store import BatchRejected, IngestReport, Store
from socialcredit.yamlio import LocatedError

__all__ = [
    "BatchRejected",
    "Catalog",
    "Decision",
    "Engine",
    "Explanation",
    "IngestReport",
    "LocatedError",
    "Rulebook",
    "RulebookSet",
    "RunSummary",
    "Standing",
    "Store",
    "decide",
    "default_catalog",
    "explain",
    "load_catalog",
    "shipped_layers",
    "standing",
]
