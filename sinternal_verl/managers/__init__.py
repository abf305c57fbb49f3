"""The verl-facing reward managers, registered in verl's reward-loop registry by name.

* ``sinternal`` (:mod:`.sinternal`): guard-judged safety reward + strict math reward;
* ``sinternal_overlong`` (:mod:`.overlong`): the same plus DAPO's soft overlong penalty.

Importing a module registers its manager; the package's ``verl.plugins`` entry point imports
both in every process that imports verl (reward workers included).
"""

__all__: list[str] = []
