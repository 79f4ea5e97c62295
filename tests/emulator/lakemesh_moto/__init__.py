"""lakemesh_moto: the project's extensions to moto's server, loaded by tests/emulator/server.py.

Owns:
- the registry of extensions (`extension` decorator, `registered`, `install_all`): each extension
  is a module under `lakemesh_moto.extensions` (or a directory given to the launcher with
  `--extension-path`, for tests of this plumbing) that registers one install function;
- the ways an extension may change moto, each refusing to overwrite something moto already does
  unless told to (`replace=True`, with a reason that `--help` and the control endpoint show):
  `add_action` (a method on a moto Response class, i.e. a new API action),
  `add_backend_method` (a method on a moto backend model),
  `add_url_path` (a URL route of a service, for REST-style services such as Lake Formation),
  `set_mapping` (an entry of one of moto's lookup tables);
- the emulator's own control endpoints, beside moto's `/moto-api/`:
  `GET /_lakemesh/health` -> {"ready": true, "moto": VERSION, "extensions": [...]}.

Does not own: starting the server (server.py), the venv (run), or any AWS behaviour of its own:
an extension implements an AWS API call faithfully to the AWS API reference, with its own tests,
or it is not written. The built-in extensions (lakemesh_moto.extensions): `glue-crawler-runs`
(crawls that catalog Parquet, crawler states, UpdateCrawler), `lakeformation-permissions`
(data cells filters; grants stored and listed as Lake Formation reports them) and
`s3-headbucket-permission` (HeadBucket authorised by s3:ListBucket, as in AWS); each module's
docstring lists what moto lacks or gets wrong and the AWS behaviour it follows.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import pkgutil
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

__all__ = [
    "Extension",
    "ExtensionError",
    "add_action",
    "add_backend_method",
    "add_url_path",
    "set_mapping",
    "control_middleware",
    "extension",
    "install_all",
    "registered",
]


class ExtensionError(Exception):
    """An extension cannot be registered or installed; the message names it and what clashed."""


@dataclasses.dataclass
class Extension:
    """One registered extension: a name, the moto service it touches, and its install function."""

    name: str
    service: str
    summary: str
    install: Callable[[], None]
    installed: bool = False
    # What install() changed in moto, for --help and /_lakemesh/health: "added lakeformation
    # action CreateDataCellsFilter", "replaced glue action StartCrawler: <reason>".
    changes: list[str] = dataclasses.field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        """JSON form for the control endpoint."""
        return {
            "name": self.name,
            "service": self.service,
            "summary": self.summary,
            "installed": self.installed,
            "changes": list(self.changes),
        }


_REGISTRY: dict[str, Extension] = {}
# The extension whose install() is running, so add_* can record what it changed.
_CURRENT: list[Extension] = []


def extension(name: str, service: str, summary: str) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Register the decorated function as the install function of extension `name`.

    `service` is moto's service name (`lakeformation`, `glue`, ...); `summary` is one line for
    `--help`. Registering the same name twice is an error: two modules would fight over it.
    """

    def register(install: Callable[[], None]) -> Callable[[], None]:
        if not name or not name.replace("-", "").replace("_", "").isalnum():
            raise ExtensionError(f"extension name {name!r}: use letters, digits, - and _")
        if name in _REGISTRY:
            raise ExtensionError(f"extension {name!r} is registered twice")
        _REGISTRY[name] = Extension(name=name, service=service, summary=summary, install=install)
        return install

    return register


def registered() -> list[Extension]:
    """Every registered extension, by name."""
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def _record(change: str) -> None:
    if _CURRENT:
        _CURRENT[-1].changes.append(change)


def _attach(owner: Any, attr: str, func: Callable[..., Any], what: str, replace: bool, reason: str) -> None:
    existing = getattr(owner, attr, None)
    owner_name = getattr(owner, "__name__", repr(owner))
    if existing is not None and not replace:
        raise ExtensionError(
            f"{what}: {owner_name}.{attr} already exists in moto; "
            "pass replace=True with a reason if the extension must change it"
        )
    if replace and not reason:
        raise ExtensionError(f"{what}: replacing {owner_name}.{attr} needs a reason")
    setattr(owner, attr, func)
    verb = "replaced" if existing is not None else "added"
    _record(f"{verb} {what}" + (f": {reason}" if existing is not None else ""))


def _snake(action: str) -> str:
    """`CreateDataCellsFilter` -> `create_data_cells_filter`, the way moto names its methods."""
    from moto.core.utils import camelcase_to_underscores

    return camelcase_to_underscores(action)


def add_action(
    response_cls: type,
    action: str,
    func: Callable[..., Any],
    *,
    replace: bool = False,
    reason: str = "",
) -> None:
    """Make `action` (the AWS API name, `CreateDataCellsFilter`) an action of `response_cls`.

    moto's BaseResponse.call_action dispatches an action to the method named after it in
    snake_case; `func(self)` receives the Response instance (`self._get_param`, `self.region`,
    `self.current_account`) and returns what moto's methods return (a body string, or
    `(status, headers, body)`). Raises ExtensionError when moto already has the method and
    `replace` is false.
    """
    if not action or not action[0].isupper() or not action.isalnum():
        raise ExtensionError(f"action {action!r} is not an AWS API action name (e.g. CreateDataCellsFilter)")
    service = getattr(response_cls, "__name__", "?")
    _attach(response_cls, _snake(action), func, f"action {action} on {service}", replace, reason)


def add_backend_method(
    backend_cls: type,
    name: str,
    func: Callable[..., Any],
    *,
    replace: bool = False,
    reason: str = "",
) -> None:
    """Add method `name` to a moto backend model class (`LakeFormationBackend`), where the state
    of an action lives. Raises ExtensionError when it exists and `replace` is false."""
    if not name.isidentifier():
        raise ExtensionError(f"backend method {name!r} is not a Python identifier")
    owner = getattr(backend_cls, "__name__", "?")
    _attach(backend_cls, name, func, f"backend method {owner}.{name}", replace, reason)


def add_url_path(
    urls_module: Any,
    path: str,
    handler: Callable[..., Any],
    *,
    replace: bool = False,
    reason: str = "",
) -> None:
    """Route `path` (moto's form: `"{0}/CreateDataCellsFilter$"`) of a service to `handler`
    (usually the service's `response.dispatch`), by adding it to the service's
    `moto.<service>.urls.url_paths` before the server builds that service's app.

    REST-style services (Lake Formation, Glue's newer calls) route by path, so a new action
    needs both this and `add_action`. Raises ExtensionError on a path moto already routes,
    unless `replace`.
    """
    paths = getattr(urls_module, "url_paths", None)
    if not isinstance(paths, dict):
        raise ExtensionError(f"{urls_module!r} has no url_paths dict: not a moto urls module")
    if not path.startswith("{0}/"):
        raise ExtensionError(f"url path {path!r} must start with '{{0}}/' like moto's own")
    module = getattr(urls_module, "__name__", "?")
    if path in paths and not replace:
        raise ExtensionError(f"url path {path} of {module} is already routed by moto; pass replace=True with a reason")
    if path in paths and not reason:
        raise ExtensionError(f"url path {path} of {module}: replacing needs a reason")
    existed = path in paths
    paths[path] = handler
    _record(("replaced" if existed else "added") + f" url path {path} of {module}" + (f": {reason}" if existed else ""))


def set_mapping(
    mapping: dict[str, Any],
    key: str,
    value: Any,
    what: str,
    *,
    replace: bool = False,
    reason: str = "",
) -> None:
    """Set `mapping[key] = value` in one of moto's lookup tables (an action-name map, say).

    `what` names the entry for --help and the control endpoint ("s3 IAM action of HeadBucket").
    Like the other helpers it refuses to overwrite an existing entry unless `replace`, and a
    replacement needs a reason.
    """
    if not isinstance(mapping, dict):
        raise ExtensionError(f"{what}: {mapping!r} is not a dict")
    existed = key in mapping
    if existed and not replace:
        raise ExtensionError(f"{what}: moto already sets {key!r} = {mapping[key]!r}; pass replace=True with a reason")
    if existed and not reason:
        raise ExtensionError(f"{what}: replacing needs a reason")
    old = mapping.get(key)
    mapping[key] = value
    if existed:
        _record(f"replaced {what} ({old!r} -> {value!r}): {reason}")
    else:
        _record(f"added {what} ({value!r})")


def _import_builtin() -> None:
    """Import every module of lakemesh_moto.extensions (each registers itself on import)."""
    from . import extensions

    for info in sorted(pkgutil.iter_modules(extensions.__path__), key=lambda i: i.name):
        importlib.import_module(f"{extensions.__name__}.{info.name}")


def _import_path(directory: Path) -> None:
    """Import every `*.py` of `directory` as an extra extension module (tests of the plumbing)."""
    if not directory.is_dir():
        raise ExtensionError(f"--extension-path {directory}: not a directory")
    for file in sorted(directory.glob("*.py")):
        name = f"lakemesh_moto_extra_{file.stem}"
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise ExtensionError(f"cannot import extension file {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except ExtensionError:
            raise
        except Exception as e:  # an extension that fails to import must stop the launcher
            raise ExtensionError(f"extension file {file}: {type(e).__name__}: {e}") from e


def install_all(extra_paths: Iterable[Path] = ()) -> list[Extension]:
    """Import the built-in extensions (and those under `extra_paths`), then install each once.

    Must run before the server answers its first request: moto builds a service's routes on the
    first request for that service. Returns the extensions, installed.
    """
    _import_builtin()
    for p in extra_paths:
        _import_path(Path(p))
    for ext in registered():
        if ext.installed:
            continue
        _CURRENT.append(ext)
        try:
            ext.install()
        except ExtensionError as e:
            raise ExtensionError(f"extension {ext.name!r}: {e}") from e
        except Exception as e:
            raise ExtensionError(f"extension {ext.name!r} failed to install: {type(e).__name__}: {e}") from e
        finally:
            _CURRENT.pop()
        ext.installed = True
    return registered()


def health() -> dict[str, Any]:
    """What GET /_lakemesh/health answers."""
    import moto

    return {
        "ready": True,
        "moto": moto.__version__,
        "extensions": [e.describe() for e in registered()],
    }


def control_middleware(app: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap moto's WSGI app so `/_lakemesh/...` is answered here and everything else by moto."""

    def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if not path.startswith("/_lakemesh/"):
            return app(environ, start_response)
        if path == "/_lakemesh/health" and environ.get("REQUEST_METHOD") == "GET":
            status, body = "200 OK", health()
        else:
            status, body = "404 Not Found", {"error": f"no emulator control endpoint {path}"}
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    return wsgi
