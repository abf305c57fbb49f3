"""One harm-category vocabulary for every guard.

Qwen3Guard names categories in words, Llama Guard by code (S1-S14), WildGuard not at all.
Rewards, metrics and the data pipeline count categories across guards, so each guard's
names are mapped here onto short shared names. A name we do not know becomes
:data:`OTHER` (the raw name stays in ``GuardVerdict.extra["raw_categories"]``) rather than
being dropped: an unknown category is still a reported harm.
"""

from __future__ import annotations

import re
from functools import lru_cache

VIOLENT = "violent"
NON_VIOLENT_ILLEGAL = "non_violent_illegal"
SEX_CRIMES = "sex_crimes"
CHILD_SEXUAL_EXPLOITATION = "child_sexual_exploitation"
SEXUAL_CONTENT = "sexual_content"
DEFAMATION = "defamation"
SPECIALIZED_ADVICE = "specialized_advice"
PRIVACY = "privacy"
INTELLECTUAL_PROPERTY = "intellectual_property"
INDISCRIMINATE_WEAPONS = "indiscriminate_weapons"
HATE = "hate"
SELF_HARM = "self_harm"
ELECTIONS = "elections"
CODE_INTERPRETER_ABUSE = "code_interpreter_abuse"
UNETHICAL = "unethical"
POLITICALLY_SENSITIVE = "politically_sensitive"
JAILBREAK = "jailbreak"
OTHER = "other"

#: every shared name, in a stable order (metrics export one counter per name).
CATEGORIES: tuple[str, ...] = (
    VIOLENT,
    NON_VIOLENT_ILLEGAL,
    SEX_CRIMES,
    CHILD_SEXUAL_EXPLOITATION,
    SEXUAL_CONTENT,
    DEFAMATION,
    SPECIALIZED_ADVICE,
    PRIVACY,
    INTELLECTUAL_PROPERTY,
    INDISCRIMINATE_WEAPONS,
    HATE,
    SELF_HARM,
    ELECTIONS,
    CODE_INTERPRETER_ABUSE,
    UNETHICAL,
    POLITICALLY_SENSITIVE,
    JAILBREAK,
    OTHER,
)

#: Qwen3Guard-Gen category names (as emitted) -> shared name.
QWEN3GUARD: dict[str, str] = {
    "Violent": VIOLENT,
    "Non-violent Illegal Acts": NON_VIOLENT_ILLEGAL,
    "Sexual Content or Sexual Acts": SEXUAL_CONTENT,
    "PII": PRIVACY,
    "Suicide & Self-Harm": SELF_HARM,
    "Unethical Acts": UNETHICAL,
    "Politically Sensitive Topics": POLITICALLY_SENSITIVE,
    "Copyright Violation": INTELLECTUAL_PROPERTY,
    "Jailbreak": JAILBREAK,
}

#: Llama Guard 3/4 hazard codes -> shared name (names in comments for reference).
LLAMAGUARD: dict[str, str] = {
    "S1": VIOLENT,  # Violent Crimes
    "S2": NON_VIOLENT_ILLEGAL,  # Non-Violent Crimes
    "S3": SEX_CRIMES,  # Sex-Related Crimes
    "S4": CHILD_SEXUAL_EXPLOITATION,  # Child Sexual Exploitation
    "S5": DEFAMATION,  # Defamation
    "S6": SPECIALIZED_ADVICE,  # Specialized Advice
    "S7": PRIVACY,  # Privacy
    "S8": INTELLECTUAL_PROPERTY,  # Intellectual Property
    "S9": INDISCRIMINATE_WEAPONS,  # Indiscriminate Weapons
    "S10": HATE,  # Hate
    "S11": SELF_HARM,  # Suicide & Self-Harm
    "S12": SEXUAL_CONTENT,  # Sexual Content
    "S13": ELECTIONS,  # Elections
    "S14": CODE_INTERPRETER_ABUSE,  # Code Interpreter Abuse
}

#: WildGuard emits no categories: its verdicts carry none.
WILDGUARD: dict[str, str] = {}


def _norm(name: str) -> str:
    n = name.strip().strip("*_`\"'.").lower()
    n = n.replace("&", " and ")
    return re.sub(r"[\s\-_/]+", " ", n).strip()


_QWEN_NORM = {_norm(k): v for k, v in QWEN3GUARD.items()}
# common spellings seen from models and papers
_QWEN_NORM.update(
    {_norm("Suicide and Self-Harm"): SELF_HARM, _norm("Non-Violent Illegal Acts"): NON_VIOLENT_ILLEGAL}
)


def map_qwen3guard(names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    return _map_qwen3guard(tuple(names))


@lru_cache(maxsize=4096)
def _map_qwen3guard(names: tuple[str, ...]) -> tuple[str, ...]:
    """Qwen3Guard names (case/spacing tolerant) -> shared names, order kept, no duplicates."""
    out: list[str] = []
    for name in names:
        shared = _QWEN_NORM.get(_norm(name), OTHER)
        if shared not in out:
            out.append(shared)
    return tuple(out)


def map_llamaguard(codes: list[str]) -> tuple[str, ...]:
    """Llama Guard codes (``S1``..``S14``, case tolerant) -> shared names."""
    out: list[str] = []
    for code in codes:
        shared = LLAMAGUARD.get(code.strip().upper(), OTHER)
        if shared not in out:
            out.append(shared)
    return tuple(out)
