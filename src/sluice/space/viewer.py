"""Who is looking: the one value every access check in the shared space is made against."""

from __future__ import annotations

from dataclasses import dataclass

MEMBER, ADMIN = "member", "admin"
ROLES = (MEMBER, ADMIN)


@dataclass(frozen=True, slots=True)
class Viewer:
    """A signed-in person. `email` is lower-case: it is compared with recipient addresses."""

    email: str
    role: str = MEMBER
    name: str = ""

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN
