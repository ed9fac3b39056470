"""What the three registries (routers, hook kinds, metric providers) share.

A kind is a name, the pydantic model of its configuration (whose `type` Literal is the name)
and a factory for the implementation. The configuration's tagged unions, the JSON Schema and
the `sluice kinds` listing are built from the registries, so a kind is declared once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar, Union, get_args

from pydantic import BaseModel, Field

T = TypeVar("T", bound="Kind")


@dataclass(frozen=True)
class Kind:
    """One registered kind. `factory` builds the implementation from what the registry's caller
    passes (a router takes the application, a provider its configuration); `description` is the
    one line shown by `sluice kinds` and `GET /api/v1/kinds`."""

    config: type[BaseModel]
    factory: Callable[..., Any]
    description: str

    @property
    def name(self) -> str:
        """The `type:` value, read from the model's `type` Literal (so it is written once)."""
        (name,) = get_args(self.config.model_fields["type"].annotation)
        return str(name)


class Registry(Generic[T]):
    """`name -> kind`, in registration order; an unknown name is a KeyError naming the known ones."""

    def __init__(self, what: str, kinds: Iterable[T]) -> None:
        self.what = what
        self.kinds: dict[str, T] = {}
        for kind in kinds:
            if kind.name in self.kinds:
                raise ValueError(f"two {what} kinds are named {kind.name!r}")
            self.kinds[kind.name] = kind

    def __getitem__(self, name: str) -> T:
        try:
            return self.kinds[name]
        except KeyError:
            raise KeyError(f"unknown {self.what} type {name!r}; known: {', '.join(self.kinds)}") from None

    def __iter__(self) -> Any:
        return iter(self.kinds)

    def __contains__(self, name: object) -> bool:
        return name in self.kinds

    def union(self) -> Any:
        """The configuration's tagged union of every kind's model (discriminator `type`)."""
        models = tuple(kind.config for kind in self.kinds.values())
        return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - built at run time

    def listing(self) -> dict[str, str]:
        return {name: kind.description for name, kind in self.kinds.items()}
