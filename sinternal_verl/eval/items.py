"""Typed records passed between the harness's stages (load -> generate -> judge -> metrics)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EvalItem:
    """One benchmark item.

    ``prompt`` is the user request as published; what the model is actually sent may add an
    instruction (math: "put your final answer within \\boxed{}") or, for verification items,
    wrap the (prompt, response) pair in the verification prompt.
    """

    id: str
    prompt: str
    #: harmful | benign | math | verification
    kind: str
    category: str | None = None
    #: math: the reference answer
    answer: str | None = None
    #: verification: the assistant answer the model must judge
    response: str | None = None
    #: verification: reference label, ``safe`` or ``unsafe`` (None: from the judge)
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass
class Benchmark:
    """A loaded benchmark: its items and where they came from (recorded in metrics.json)."""

    name: str  # display name (unique in a run)
    registry: str  # loader name
    items: list[EvalItem]
    provenance: dict[str, Any]
    #: the model prompt for an item: ``template.format(prompt=item.prompt)``
    prompt_template: str = "{prompt}"
    #: StrongREJECT rubric scoring for this set
    rubric: bool = False

    def kinds(self) -> set[str]:
        return {it.kind for it in self.items}
