"""commbench: how many bytes data-parallel training pushes through the network each step.

The data path, one module per step:
config (conf/) -> plan.py -> runner.py (Ray) -> worker.py (model + comm/hooks.py)
-> stats.py + records.py -> sinks/
"""

__version__ = "0.1.0"
