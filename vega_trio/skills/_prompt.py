"""Injecting the active skills into an agent's system prompt, and the tools they bring."""

from __future__ import annotations

import fnmatch
import functools
import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

from ..agent import ChatRequest
from ..llm import Message
from ._matching import DEFAULT_MAX_ACTIVE, SkillSet, check_max_active
from ._model import Skill, SkillError

if TYPE_CHECKING:
    from ..runtime import Process
    from ..tools import Tools

__all__ = [
    "ACTIVE_SKILLS_HEADING",
    "BasePrompt",
    "SkillsPrompt",
    "current_message_text",
    "render_skills_prompt",
    "skill_tool_names",
]

ACTIVE_SKILLS_HEADING = "# Active Skills"

_INTRO = "The skills below match the current message. Follow their instructions where they apply."

BasePrompt: TypeAlias = "str | Callable[[], str] | Callable[[Process], str]"


def render_skills_prompt(base: str, skills: Sequence[Skill]) -> str:
    """``base`` followed by an ``# Active Skills`` section with each skill's name
    (a ``##`` heading), description and instructions, in the given order.

    With no skills, ``base`` is returned unchanged.
    """
    if not skills:
        return base
    parts = [ACTIVE_SKILLS_HEADING, _INTRO]
    for skill in skills:
        parts.append(f"## {skill.name}")
        if skill.description:
            parts.append(skill.description)
        if skill.instructions:
            parts.append(skill.instructions)
    section = "\n\n".join(parts)
    base = base.rstrip()
    return f"{base}\n\n{section}" if base else section


def skill_tool_names(tools: Tools, skills: Iterable[Skill]) -> tuple[str, ...]:
    """The names of the tools in ``tools`` that ``skills`` bring, each once, in the
    registry's order. A skill's ``tools`` entries are names or shell-style globs
    (``"github__*"``); a glob may match nothing.

    Pass the active skills to get the tools to expose for this message, or every
    skill at startup to check that all the tools they name exist.

    Raises:
        SkillError: a skill names (without a glob) a tool that ``tools`` does not
            have; every such tool is listed with its skill and file.
    """
    registered = tools.names()
    wanted: set[str] = set()
    problems: list[str] = []
    for skill in skills:
        for name in skill.tools:
            if any(c in name for c in "*?["):
                wanted.update(n for n in registered if fnmatch.fnmatchcase(n, name))
            elif name in tools:
                wanted.add(name)
            else:
                problems.append(f"skill {skill.name!r} ({skill.where}) lists tool {name!r}")
    if problems:
        known = ", ".join(registered) or "none"
        raise SkillError(
            f"{'; '.join(problems)}, but no such tool is registered (registered tools: "
            f"{known}); register the tool, or remove it from the skill's 'tools'"
        )
    return tuple(n for n in registered if n in wanted)


def current_message_text(process: Process) -> str:
    """The text of the user message ``process`` is answering now (the message that
    started the current send, also during later rounds of its tool loop).

    Outside a send, the latest user text in the process's history; ``""`` if none.
    """
    hook = getattr(process, "current_message", None)
    if isinstance(hook, Message):
        return hook.text
    # NOTE: until the agent loop publishes the message it is serving (see the
    # ``current_message`` hook above), read it from the runtime's request in flight.
    # This is the only private attribute the skills package touches.
    request = getattr(process, "_current_request", None)
    payload = getattr(request, "payload", None)
    if isinstance(payload, ChatRequest):
        return payload.message.text
    if isinstance(payload, Message):
        return payload.text
    if isinstance(payload, str):
        return payload
    history = getattr(process, "history", None)
    if isinstance(history, list):
        for message in reversed(history):
            if isinstance(message, Message) and message.role == "user" and message.text:
                return message.text
    return ""


def _base_getter(base: Any) -> Callable[[Process], str]:
    if isinstance(base, str):
        return lambda _process: base
    if not callable(base):
        raise TypeError(
            f"SkillsPrompt base must be a str or a callable returning one, "
            f"not {type(base).__name__}"
        )
    try:
        takes_process = len(inspect.signature(base).parameters) >= 1
    except (TypeError, ValueError):
        takes_process = False
    if takes_process:
        return lambda process: str(base(process))
    return lambda _process: str(base())


class SkillsPrompt:
    """A system prompt that adds the skills the current message calls for.

    Use it as an agent's ``system``::

        skills = load_skills(["./skills"])
        agent = Agent(name="assistant", system=SkillsPrompt("You are helpful.", skills))

    For every LLM request the agent makes, it takes the user message being answered,
    picks the (at most ``max_active``) best-matching skills
    (:meth:`SkillSet.match`) and returns the base prompt followed by their
    ``# Active Skills`` section (:func:`render_skills_prompt`). The skills stay the
    same through the tool loop of one send, since they depend only on that message.

    Args:
        base: the agent's own prompt: a string, or a callable returning one (taking
            the calling process, or nothing).
        skills: a :class:`SkillSet` (from :func:`load_skills`) or skills.
        max_active: how many skills may be active at once (``0`` turns skills off).

    Raises:
        TypeError: ``base`` is neither a string nor a callable.
        ValueError: ``max_active`` is not a whole number >= 0.
        SkillError: two of ``skills`` share a name.
    """

    __slots__ = ("_base", "_base_getter", "_max_active", "_select", "_skills")

    def __init__(
        self,
        base: BasePrompt,
        skills: SkillSet | Iterable[Skill],
        max_active: int = DEFAULT_MAX_ACTIVE,
    ) -> None:
        self._base = base
        self._base_getter = _base_getter(base)
        self._skills = skills if isinstance(skills, SkillSet) else SkillSet(skills)
        self._max_active = check_max_active(max_active)
        # NOTE: the prompt is rebuilt for every LLM round of a send with the same
        # message; matching once per distinct message keeps that cheap.
        self._select = functools.lru_cache(maxsize=128)(self._match)

    def __repr__(self) -> str:
        return (
            f"SkillsPrompt(base={self._base!r}, skills={self._skills!r}, "
            f"max_active={self._max_active})"
        )

    @property
    def base(self) -> BasePrompt:
        """The agent's own prompt, as given."""
        return self._base

    @property
    def skills(self) -> SkillSet:
        """The skills to choose from."""
        return self._skills

    @property
    def max_active(self) -> int:
        """How many skills may be active at once."""
        return self._max_active

    def _match(self, message: str) -> tuple[Skill, ...]:
        return self._skills.match(message, max_active=self._max_active)

    def select(self, message: str) -> tuple[Skill, ...]:
        """The skills active for ``message``, best first."""
        return self._select(message)

    def active(self, process: Process) -> tuple[Skill, ...]:
        """The skills active for the message ``process`` is answering."""
        return self.select(current_message_text(process))

    def tool_names(self, process: Process, tools: Tools) -> tuple[str, ...]:
        """The names of the tools in ``tools`` the active skills bring
        (see :func:`skill_tool_names`)."""
        return skill_tool_names(tools, self.active(process))

    def __call__(self, process: Process) -> str:
        """The system prompt for the request ``process`` is about to make."""
        return render_skills_prompt(self._base_getter(process), self.active(process))
