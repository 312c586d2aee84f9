"""Class specs (``"package.module:Class"``, ``"path/to/file.py:Class"``): importing them, and which may be.

A spec that the user typed (on a command line, or in code) is theirs to run, and :func:`load_class` imports
it. A spec read from a file (a checkpoint's config, a suite YAML, a training config, a submission) is
untrusted input, like a pickle: :func:`check_trusted` lets it through only when it names a class inside the
``iapo_gym`` package or one the user registered in code, or when the user opts in with
``trust_remote_code=True`` (``--trust-remote-code`` on the command line). The check reads the string only:
nothing is imported or executed before it passes.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Collection
from pathlib import Path
from typing import Any

PACKAGE = "iapo_gym"
USER_MODULE_PREFIX = "iapo_user_"
"""Module names under which :func:`load_class` imports ``file.py`` specs."""
OPT_IN = "pass trust_remote_code=True in the API, or --trust-remote-code on the iapo-bench / iapo-train command line"


class UntrustedCodeError(ValueError):
    """A file names code outside ``iapo_gym`` and the user did not opt in to running it."""


def split_spec(spec: str) -> tuple[str, str]:
    """``(module or file, attribute)`` of a spec; a clear ValueError when it has neither form."""
    module_name, sep, attr = str(spec).rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"class spec {spec!r} must look like 'module:Class' or 'path/to/file.py:Class'")
    return module_name, attr


def is_file_spec(spec: str) -> bool:
    """True for ``"path/to/file.py:Class"``."""
    return str(spec).rpartition(":")[0].endswith(".py")


def is_package_spec(spec: str) -> bool:
    """True when ``spec`` names an attribute of a module inside ``iapo_gym`` (no file path, no odd names)."""
    module_name, sep, attr = str(spec).rpartition(":")
    parts = module_name.split(".")
    return bool(sep) and parts[0] == PACKAGE and all(p.isidentifier() for p in parts) and attr.isidentifier()


def normalise_spec(spec: str) -> str:
    """The spec with a file path made absolute (so two spellings of one file compare equal)."""
    if not is_file_spec(spec):
        return str(spec)
    module_name, attr = split_spec(spec)
    return f"{Path(module_name).expanduser().resolve()}:{attr}"


def check_trusted(
    spec: str, *, where: str, what: str = "class", trust_remote_code: bool = False, allowed: Collection[str] = ()
) -> None:
    """Refuse ``spec`` read from ``where`` unless it is inside ``iapo_gym``, in ``allowed`` (names the user
    registered in code) or the user opted in. Looks at the string only; imports nothing."""
    if trust_remote_code or is_package_spec(spec) or _already_loaded(spec):
        return
    if allowed and normalise_spec(spec) in {normalise_spec(a) for a in allowed}:
        return
    kind = "a file" if is_file_spec(spec) else "a module"
    raise UntrustedCodeError(
        f"{where} names the {what} {spec!r}, {kind} outside iapo_gym that is not registered; loading it would "
        f"import and run its code, so it was not imported. If you trust where it came from, opt in: {OPT_IN}"
    )


def check_env_id(env_id: Any, *, where: str, trust_remote_code: bool = False) -> None:
    """Refuse an env id of the form ``"module:Env-v0"`` read from a file: Gymnasium imports that module."""
    if isinstance(env_id, str) and ":" in env_id and not trust_remote_code:
        raise UntrustedCodeError(
            f"{where} names the env {env_id!r}, whose module part Gymnasium would import and run; it was not "
            f"imported. Give a registered env id (like VisualToolVQA-HBar-v0), or if you trust it, opt in: {OPT_IN}"
        )


def _user_module_key(path: Path) -> str:
    """The ``sys.modules`` name :func:`load_class` imports the file ``path`` under."""
    return f"{USER_MODULE_PREFIX}{abs(hash(str(path.expanduser().resolve())))}"


def _already_loaded(spec: str) -> bool:
    """True for a ``file.py`` spec whose file :func:`load_class` has imported in this process already (the user
    named it, or opted in): letting it through runs nothing new, so a user's agent may re-read its own
    checkpoint (the agents layer's ``read_checkpoint``)."""
    if not is_file_spec(spec):
        return False
    module_name, _ = split_spec(spec)
    return _user_module_key(Path(module_name)) in sys.modules


def load_class(spec: str) -> Any:
    """Import ``"package.module:Name"`` or ``"path/to/file.py:Name"`` and return the attribute.

    This runs the module's code: call it on specs the user gave, or after :func:`check_trusted`.
    """
    module_name, attr = split_spec(spec)
    if module_name.endswith(".py"):
        path = Path(module_name).expanduser()
        if not path.is_file():
            raise ValueError(f"class spec {spec!r}: no file {path}")
        mod_key = _user_module_key(path)
        module = sys.modules.get(mod_key)
        if module is None:
            loader_spec = importlib.util.spec_from_file_location(mod_key, path)
            assert loader_spec is not None and loader_spec.loader is not None
            module = importlib.util.module_from_spec(loader_spec)
            sys.modules[mod_key] = module
            try:
                loader_spec.loader.exec_module(module)
            except BaseException:
                del sys.modules[mod_key]  # a broken file is not half-imported for the next try
                raise
    else:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(f"class spec {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"class spec {spec!r}: module {module_name!r} has no attribute {attr!r}") from None


__all__ = [
    "OPT_IN",
    "PACKAGE",
    "USER_MODULE_PREFIX",
    "UntrustedCodeError",
    "check_env_id",
    "check_trusted",
    "is_file_spec",
    "is_package_spec",
    "load_class",
    "normalise_spec",
    "split_spec",
]
