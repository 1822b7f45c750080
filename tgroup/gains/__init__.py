"""Transfer gains measured during one multi-task training run (DESIGN §2)."""
from tgroup.gains.collect import CollectConfig, collect_gains, run_collection
from tgroup.gains.combinations import MEASURES
from tgroup.gains.gains import Gains

__all__ = ["CollectConfig", "collect_gains", "run_collection", "Gains", "MEASURES"]
