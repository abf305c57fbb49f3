"""sinternal-verl: SInternal verification SFT and guard-rewarded GRPO/DAPO on verl.

Importing this package is cheap on purpose: verl imports it through the
``verl.plugins`` entry point in every process (driver, TaskRunner, every Ray
reward worker), so heavy modules are imported where they are used.
"""

__version__ = "0.1.0"
