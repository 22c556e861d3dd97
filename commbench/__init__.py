"""commbench: how many bytes data-parallel training pushes through the network each step.

The data path, one module per step:
argv -> commands/ -> plan.py -> runner.py (Ray) -> worker.py (model + comm/hooks.py)
-> record.py -> results/ (records, setup identity, joins) -> sinks/ (console, report, W&B)
"""

__version__ = "0.1.0"
