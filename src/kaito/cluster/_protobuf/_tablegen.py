"""Generate ``_tables.py``, the field table of the Kubernetes protobuf codec, from the Go API types.

A development tool, not used at run time. The Go structs in ``k8s.io/api`` and
``k8s.io/apimachinery`` carry every fact the codec needs in their struct tags: the field number
and wire type (``protobuf:"bytes,3,rep,name=ports"``), the JSON name and ``omitempty``, and in the
Go type whether a field is a pointer, a slice, a map or an inlined struct. This script reads those
sources with a few regular expressions and writes a plain data table; the codec in ``_codec.py``
is ours and table-driven::

    python -m kaito.cluster._protobuf._tablegen --api ~/src/api --apimachinery ~/src/apimachinery \
        > /tmp/tables.py && mv /tmp/tables.py src/kaito/cluster/_protobuf/_tables.py
    ruff format src/kaito/cluster/_protobuf/_tables.py
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import attrs

__all__ = ("ROOTS", "generate", "main")

# (apiVersion, kind, Go package, Go type): the kinds served in protobuf; each kind's List too
# where the Go package has one.
ROOTS: tuple[tuple[str, str, str, str], ...] = tuple(
    (api_version, kind, package, kind)
    for api_version, package, kinds in (
        (
            "v1",
            "k8s.io/api/core/v1",
            "Namespace Node Pod Service Endpoints ConfigMap Secret ServiceAccount Event "
            "PersistentVolumeClaim PersistentVolume PodTemplate Binding ReplicationController "
            "ResourceQuota LimitRange ComponentStatus",
        ),
        (
            "apps/v1",
            "k8s.io/api/apps/v1",
            "Deployment StatefulSet ReplicaSet DaemonSet ControllerRevision",
        ),
        ("batch/v1", "k8s.io/api/batch/v1", "Job CronJob"),
        ("autoscaling/v1", "k8s.io/api/autoscaling/v1", "Scale"),
        ("coordination.k8s.io/v1", "k8s.io/api/coordination/v1", "Lease"),
        ("events.k8s.io/v1", "k8s.io/api/events/v1", "Event"),
        ("discovery.k8s.io/v1", "k8s.io/api/discovery/v1", "EndpointSlice"),
        ("storage.k8s.io/v1", "k8s.io/api/storage/v1", "StorageClass"),
        ("scheduling.k8s.io/v1", "k8s.io/api/scheduling/v1", "PriorityClass"),
        ("policy/v1", "k8s.io/api/policy/v1", "PodDisruptionBudget Eviction"),
        (
            "rbac.authorization.k8s.io/v1",
            "k8s.io/api/rbac/v1",
            "Role RoleBinding ClusterRole ClusterRoleBinding",
        ),
        (
            "admissionregistration.k8s.io/v1",
            "k8s.io/api/admissionregistration/v1",
            "ValidatingWebhookConfiguration MutatingWebhookConfiguration",
        ),
        (
            "authentication.k8s.io/v1",
            "k8s.io/api/authentication/v1",
            "TokenRequest TokenReview SelfSubjectReview",
        ),
        (
            "authorization.k8s.io/v1",
            "k8s.io/api/authorization/v1",
            "SelfSubjectAccessReview SelfSubjectRulesReview SubjectAccessReview "
            "LocalSubjectAccessReview",
        ),
        (
            "v1",
            "k8s.io/apimachinery/pkg/apis/meta/v1",
            "Status DeleteOptions WatchEvent",
        ),
    )
    for kind in kinds.split()
)

# Go types the codec encodes by hand (their proto form differs from their Go struct).
SPECIAL = {
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Time"): "meta/v1.Time",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "MicroTime"): "meta/v1.MicroTime",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "Duration"): "meta/v1.Duration",
    ("k8s.io/apimachinery/pkg/apis/meta/v1", "FieldsV1"): "meta/v1.FieldsV1",
    ("k8s.io/apimachinery/pkg/api/resource", "Quantity"): "resource.Quantity",
    ("k8s.io/apimachinery/pkg/util/intstr", "IntOrString"): "intstr.IntOrString",
    ("k8s.io/apimachinery/pkg/runtime", "RawExtension"): "runtime.RawExtension",
}
_SCALARS = {
    "string": "string",
    "bool": "bool",
    "int32": "int32",
    "int64": "int64",
    "int": "int64",
    "uint32": "uint32",
    "uint64": "uint64",
    "float64": "double",
    "float32": "float",
}
_STRUCT = re.compile(r"^type (\w+) struct \{\n(.*?)^\}", re.M | re.S)
_NAMED = re.compile(r"^type (\w+) (?:= )?([^\s{]+)\s*$", re.M)
_IMPORT_BLOCK = re.compile(r"^import \((.*?)^\)", re.M | re.S)
_IMPORT_LINE = re.compile(r'^\s*(?:(\w+)\s+)?"([^"]+)"', re.M)
_FIELD = re.compile(r"^\s*(?:(\w+)\s+)?([\w.*\[\]]+)\s*`([^`]*)`")
_TAG = re.compile(r'(\w+):"([^"]*)"')


@attrs.frozen
class _GoField:
    name: str
    type: str
    json: str
    protobuf: str
    embedded: bool


@attrs.define
class _Package:
    path: str
    structs: dict[str, list[_GoField]] = attrs.Factory(dict)
    named: dict[str, str] = attrs.Factory(dict)
    imports: dict[str, str] = attrs.Factory(dict)


def _package_dir(path: str, api: Path, apimachinery: Path) -> Path:
    if path.startswith("k8s.io/api/"):
        return api / path.removeprefix("k8s.io/api/")
    if path.startswith("k8s.io/apimachinery/"):
        return apimachinery / path.removeprefix("k8s.io/apimachinery/")
    raise ValueError(f"no source for Go package {path}")


def _load(path: str, api: Path, apimachinery: Path) -> _Package:
    package = _Package(path)
    for source in sorted(_package_dir(path, api, apimachinery).glob("*.go")):
        if source.name.endswith("_test.go") or source.name.startswith(("zz_", "generated")):
            continue
        text = source.read_text()
        for block in _IMPORT_BLOCK.findall(text):
            for alias, imported in _IMPORT_LINE.findall(block):
                package.imports[alias or imported.rsplit("/", 1)[-1]] = imported
        for name, body in _STRUCT.findall(text):
            fields = []
            for line in body.splitlines():
                if line.lstrip().startswith("//"):
                    continue
                match = _FIELD.match(line)
                if match is None:
                    continue
                go_name, go_type, tags = match.groups()
                tag = dict(_TAG.findall(tags))
                if "protobuf" not in tag or tag["protobuf"] == "-":
                    continue
                fields.append(
                    _GoField(
                        go_name or go_type.lstrip("*").rsplit(".", 1)[-1],
                        go_type,
                        tag.get("json", ""),
                        tag["protobuf"],
                        go_name is None,
                    )
                )
            package.structs[name] = fields
        for name, underlying in _NAMED.findall(text):
            package.named[name] = underlying
    return package


def _short(path: str) -> str:
    if path.startswith("k8s.io/api/"):
        return path.removeprefix("k8s.io/api/")
    return path.removeprefix("k8s.io/apimachinery/pkg/apis/").removeprefix(
        "k8s.io/apimachinery/pkg/"
    )


class _Generator:
    def __init__(self, api: Path, apimachinery: Path) -> None:
        self._api = api
        self._apimachinery = apimachinery
        self._packages: dict[str, _Package] = {}
        self.messages: dict[str, list[tuple[int, str, str, str]]] = {}
        self._queue: list[tuple[str, str]] = []

    def package(self, path: str) -> _Package:
        if path not in self._packages:
            self._packages[path] = _load(path, self._api, self._apimachinery)
        return self._packages[path]

    def message(self, path: str, name: str) -> str:
        """The table name of Go struct ``path.name``, queued for generation."""
        special = SPECIAL.get((path, name))
        if special is not None:
            return special
        qualified = f"{_short(path)}.{name}"
        if qualified not in self.messages:
            self.messages[qualified] = []
            self._queue.append((path, name))
        return qualified

    def run(self) -> None:
        while self._queue:
            path, name = self._queue.pop()
            package = self.package(path)
            if name not in package.structs:
                raise ValueError(f"{path}.{name}: no such struct")
            rows = [self._field(package, f) for f in package.structs[name]]
            self.messages[f"{_short(path)}.{name}"] = rows

    def _resolve(self, package: _Package, go_type: str) -> tuple[_Package, str]:
        """Follow one qualified name (``metav1.Time``) to its package."""
        if "." in go_type:
            alias, name = go_type.split(".", 1)
            return self.package(package.imports[alias]), name
        return package, go_type

    def _type(self, package: _Package, go_type: str, flags: set[str]) -> str:
        """The table type of a Go type expression; adds P to ``flags`` for pointers."""
        if go_type.startswith("*"):
            flags.add("P")
            return self._type(package, go_type[1:], flags)
        if go_type == "[]byte":
            return "bytes"
        if go_type.startswith("[]"):
            return "[]" + self._type(package, go_type[2:], set())
        if go_type.startswith("map["):
            key, value = go_type[4:].split("]", 1)
            return f"map[{self._type(package, key, set())}]{self._type(package, value, set())}"
        if go_type in _SCALARS:
            return _SCALARS[go_type]
        owner, name = self._resolve(package, go_type)
        if (owner.path, name) in SPECIAL:
            return SPECIAL[(owner.path, name)]
        if owner.path == "k8s.io/apimachinery/pkg/types" and name == "UID":
            return "string"
        if name in owner.structs:
            return self.message(owner.path, name)
        underlying = owner.named.get(name)
        if underlying is None:
            raise ValueError(f"{owner.path}.{name}: unknown Go type")
        if underlying.startswith("[]") and underlying != "[]byte" and "rep" not in flags:
            # A named slice is a message {repeated items = 1} in protobuf, an array in JSON.
            return "{" + self._type(owner, underlying, set()) + "}"
        return self._type(owner, underlying, flags)

    def _field(self, package: _Package, field: _GoField) -> tuple[int, str, str, str]:
        parts = field.protobuf.split(",")
        number = int(parts[1])
        json_name, *options = field.json.split(",") if field.json else [""]
        flags: set[str] = {"rep"} if "rep" in parts else set()
        table_type = self._type(package, field.type, flags)
        if "omitempty" in options:
            flags.add("O")
        if field.embedded and not json_name:
            flags.add("I")
            json_name = ""
        elif not json_name:
            json_name = field.name
        flags.discard("rep")
        return number, json_name, table_type, "".join(sorted(flags))


def _commit(source: Path, given: str) -> str:
    if given:
        return given
    try:
        return subprocess.run(
            ["git", "-C", str(source), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "(commit unknown)"


def generate(
    api: Path,
    apimachinery: Path,
    *,
    api_commit: str = "",
    apimachinery_commit: str = "",
    roots: Sequence[tuple[str, str, str, str]] = ROOTS,
) -> str:
    """The text of ``_tables.py`` for the given source trees (``roots``: the kinds to include,
    as (apiVersion, kind, Go package, Go type))."""
    generator = _Generator(api, apimachinery)
    kinds: dict[tuple[str, str], str] = {}
    for api_version, kind, path, go_name in roots:
        kinds[(api_version, kind)] = generator.message(path, go_name)
        if f"{go_name}List" in generator.package(path).structs:
            kinds[(api_version, f"{kind}List")] = generator.message(path, f"{go_name}List")
    generator.run()
    commits = [
        _commit(source, given)
        for source, given in ((api, api_commit), (apimachinery, apimachinery_commit))
    ]
    lines = [
        '"""Field table of the Kubernetes protobuf codec (generated by ``_tablegen.py``; do not',
        "edit).",
        "",
        f"Facts of the Kubernetes API read from the struct tags of k8s.io/api {commits[0][:12]}",
        f"and k8s.io/apimachinery {commits[1][:12]}. Each field is (number, JSON name, type,",
        "flags), in Go declaration order (the JSON key order). Flags: P a pointer (zero values",
        "are sent), O omitempty, I inlined in JSON. A type ``{T}`` is a named slice: a message",
        'of ``repeated T items = 1`` in protobuf, an array in JSON."""',
        "",
        '__all__ = ("KINDS", "MESSAGES")',
        "",
        "MESSAGES: dict[str, tuple[tuple[int, str, str, str], ...]] = {",
    ]
    for name in sorted(generator.messages):
        lines.append(f"    {name!r}: (")
        lines.extend(f"        {row!r}," for row in generator.messages[name])
        lines.append("    ),")
    lines.append("}")
    lines.append("")
    lines.append("KINDS: dict[tuple[str, str], str] = {")
    lines.extend(f"    {key!r}: {value!r}," for key, value in sorted(kinds.items()))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command line: write the table to stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--api", type=Path, required=True, help="a k8s.io/api checkout")
    parser.add_argument(
        "--apimachinery", type=Path, required=True, help="a k8s.io/apimachinery checkout"
    )
    parser.add_argument("--api-commit", default="", help="the commit of --api (else git's)")
    parser.add_argument("--apimachinery-commit", default="", help="the commit of --apimachinery")
    args = parser.parse_args(argv)
    sys.stdout.write(
        generate(
            args.api,
            args.apimachinery,
            api_commit=args.api_commit,
            apimachinery_commit=args.apimachinery_commit,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
