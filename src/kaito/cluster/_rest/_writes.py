"""Writes: create, update (main resource and status), patch in every format, delete with
finalizers and propagation, all with optimistic concurrency and admission."""

from __future__ import annotations

import datetime as dt
from typing import Any

from kaito.apimachinery import (
    MAX_DEPTH,
    ApplyConflict,
    FieldError,
    JsonPatchError,
    JsonPatchTooLarge,
    StrategicPatchError,
    apply_config,
    go_quote,
    json_patch,
    merge_patch,
    nesting_depth,
    object_meta_type_error,
    strategic_merge,
    validate_object_meta,
)
from kaito.cluster._errors import (
    STALE_OBJECT,
    StatusError,
    already_exists,
    bad_request,
    conflict,
    forbidden,
    invalid,
    not_found,
    unsupported_media_type,
)
from kaito.cluster._json import Obj, dumps, loads
from kaito.cluster._meta import format_time, generate_name_suffix, new_uid
from kaito.cluster._resource_types import ResourceType
from kaito.cluster._rest._base import NAMESPACES, RestBase, ensure_object, strict_message
from kaito.cluster._rest._types import (
    AdmissionAttributes,
    DeleteOptions,
    DeleteOutcome,
    RequestContext,
    WriteOptions,
)
from kaito.cluster._store import (
    ConflictError,
    GroupResource,
    KeyExistsError,
    KeyNotFoundError,
    StoredObject,
)

__all__ = ("PATCH_TYPES", "WritesMixin")

PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)
_CUSTOM_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/apply-patch+yaml",
)
_RETRIES = 8
PODS = GroupResource("", "pods")
_NOT_SPEC = ("metadata", "status", "apiVersion", "kind")
_ABSENT = object()
_SYSTEM_META = (
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


def _spec_part(obj: Obj, status_subresource: bool) -> dict[str, Any]:
    skip = _NOT_SPEC if status_subresource else ("metadata", "apiVersion", "kind")
    return {k: v for k, v in obj.items() if k not in skip}


class WritesMixin(RestBase):
    """Create, update, patch and delete."""

    # ------------------------------------------------------------------ shared steps

    def _check_type(self, rt: ResourceType, obj: Obj) -> None:
        api_version = obj.get("apiVersion") or rt.api_version
        kind = obj.get("kind") or rt.kind
        if api_version != rt.api_version:
            raise bad_request(
                f"the API version in the data ({api_version}) does not match the expected API "
                f"version ({rt.api_version})"
            )
        if kind != rt.kind:
            if rt.custom:
                raise invalid(
                    rt.group,
                    kind,
                    (obj.get("metadata") or {}).get("name", ""),
                    [FieldError("Invalid", "kind", kind, f"must be {rt.kind}")],
                )
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})"
            )
        obj["apiVersion"], obj["kind"] = api_version, kind
        problem = object_meta_type_error(obj.get("metadata"))
        if problem is not None:
            raise bad_request(
                f'{rt.kind} in version "{rt.version}" cannot be handled as a {rt.kind}: '
                f"{problem.message()}"
            )

    def _prune(
        self,
        rt: ResourceType,
        obj: Obj,
        options: WriteOptions,
        ctx: RequestContext,
        *,
        status_only: bool = False,
    ) -> None:
        schema = rt.schema
        unknown: list[str] = []
        if schema is not None:
            if status_only:
                sub = schema.child("status")
                if sub is not None and "status" in obj:
                    sub.prune(obj["status"], "status", unknown)
            else:
                schema.prune(obj, "", unknown, root=True)
        if not unknown and not ctx.duplicate_fields:
            return
        # Keys given twice in the body and fields the schema does not declare are the strict
        # decoding errors: refused under Strict, warnings under Warn (duplicates first).
        issues = [f"duplicate field {go_quote(p)}" for p in ctx.duplicate_fields]
        issues += [f"unknown field {go_quote(p)}" for p in sorted(unknown)]
        ctx.duplicate_fields.clear()
        if not issues or options.field_validation == "Ignore":
            return
        if options.field_validation == "Strict":
            raise bad_request(strict_message(rt, issues))
        ctx.warnings.extend(issues)

    def _default(self, rt: ResourceType, obj: Obj) -> None:
        if rt.custom and rt.schema is not None:
            rt.schema.apply_defaults(obj)
        rt.strategy.default(obj)

    def _validate(
        self, rt: ResourceType, obj: Obj, old: Obj | None, *, status_only: bool = False
    ) -> None:
        errors: list[FieldError] = []
        if status_only:
            schema = rt.schema.child("status") if rt.schema is not None else None
            if schema is not None and "status" in obj:
                errors += schema.validate(obj["status"], "status")
        else:
            errors += validate_object_meta(
                obj["metadata"], namespaced=rt.namespaced, name_validator=rt.name_validator
            )
            if rt.schema is not None:
                errors += rt.schema.validate(obj, "", root=True)
            errors += rt.strategy.validate(obj, old)
        if old is not None:
            errors += self._validate_meta_update(obj["metadata"], old["metadata"])
        if errors:
            raise invalid(rt.group, rt.kind, obj["metadata"].get("name", ""), errors)

    @staticmethod
    def _validate_meta_update(meta: Obj, old: Obj) -> list[FieldError]:
        errors = []
        if old.get("deletionTimestamp"):
            added = [
                f for f in meta.get("finalizers") or [] if f not in (old.get("finalizers") or [])
            ]
            if added:
                errors.append(
                    FieldError(
                        "Forbidden",
                        "metadata.finalizers",
                        detail=(
                            "no new finalizers can be added if the object is being deleted, "
                            f"found new finalizers {added!r}"
                        ),
                    )
                )
        return errors

    def _attributes(
        self,
        rt: ResourceType,
        *,
        operation: str,
        namespace: str,
        name: str,
        subresource: str,
        old: Obj | None,
        ctx: RequestContext,
        dry_run: bool,
        options: Obj,
    ) -> AdmissionAttributes:
        return AdmissionAttributes(
            rt=rt,
            operation=operation,
            namespace=namespace,
            name=name,
            subresource=subresource,
            old=old,
            context=ctx,
            dry_run=dry_run,
            options=options,
        )

    async def _check_namespace(self, rt: ResourceType, namespace: str, *, creating: bool) -> None:
        if not rt.namespaced:
            return
        ns = await self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("", "namespaces", namespace)
        if creating and ns.deleting:
            raise forbidden(
                rt.group,
                rt.plural,
                "",
                f"unable to create new content in namespace {namespace} because it is being "
                "terminated",
                causes=[
                    {
                        "reason": "NamespaceTerminating",
                        "message": f"namespace {namespace} is being terminated",
                        "field": "metadata.namespace",
                    }
                ],
            )

    def _fake_stored(self, rt: ResourceType, obj: Obj) -> StoredObject:
        rv = obj["metadata"].get("resourceVersion", "")
        return StoredObject(dumps(obj), int(rv) if str(rv).isdigit() else 0, self.index(rt, obj))

    # ------------------------------------------------------------------ create

    async def create(
        self,
        rt: ResourceType,
        namespace: str,
        obj: Obj,
        options: WriteOptions | None = None,
        ctx: RequestContext | None = None,
        *,
        subresource: str = "",
    ) -> StoredObject:
        """Create an object. Raises ``StatusError`` (400, 403, 404, 409, 422)."""
        options = options or WriteOptions()
        ctx = ctx or RequestContext()
        obj = ensure_object(obj)
        self._check_type(rt, obj)
        meta = obj.setdefault("metadata", {})
        if rt.namespaced:
            body_ns = meta.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the namespace sent on "
                    "the request"
                )
            meta["namespace"] = namespace = namespace or body_ns or ""
            if not namespace:
                raise bad_request(
                    "the server could not find the requested resource: a namespace is required"
                )
        else:
            meta.pop("namespace", None)
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = f"{meta['generateName']}{generate_name_suffix()}"
        name = meta.get("name", "")
        await self._check_namespace(rt, namespace, creating=True)
        meta["uid"] = new_uid()
        meta["creationTimestamp"] = format_time(self.clock())
        for key in (
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "resourceVersion",
            "selfLink",
        ):
            meta.pop(key, None)
        if rt.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        meta.pop("managedFields", None)
        if rt.custom and "status" in rt.subresources:
            obj.pop("status", None)
        self._prune(rt, obj, options, ctx)
        self._default(rt, obj)
        rt.strategy.prepare_create(obj)
        if self.admission.active(rt, "CREATE", subresource):
            attributes = self._attributes(
                rt,
                operation="CREATE",
                namespace=namespace,
                name=name,
                subresource=subresource,
                old=None,
                ctx=ctx,
                dry_run=options.dry_run,
                options={},
            )
            obj = await self.admission.mutate(attributes, obj)
            self._validate(rt, obj, None)
            await self.admission.validate(attributes, obj)
        else:
            self._validate(rt, obj, None)
        self.to_storage(rt, obj)
        if options.dry_run:
            return self._fake_stored(rt, obj)
        try:
            return await self.store.create(rt.gr, obj, self.index(rt, obj))
        except KeyExistsError:
            raise already_exists(rt.group, rt.plural, name) from None

    # ------------------------------------------------------------------ update and patch

    async def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        obj: Obj,
        *,
        options: WriteOptions | None = None,
        ctx: RequestContext | None = None,
        subresource: str = "",
    ) -> tuple[StoredObject, bool]:
        """Replace an object (PUT); returns the stored object and whether it was created."""
        options = options or WriteOptions()
        ctx = ctx or RequestContext()
        obj = ensure_object(obj)
        self._check_type(rt, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        if rt.namespaced and meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the "
                "request"
            )
        meta["name"] = name
        if rt.namespaced:
            meta["namespace"] = namespace
        wanted = str(meta.get("resourceVersion") or "")
        if not wanted and not rt.allow_unconditional_update:
            current = await self.store.get(rt.gr, namespace if rt.namespaced else "", name)
            if current is not None:
                raise invalid(
                    rt.group,
                    rt.kind,
                    name,
                    [
                        FieldError(
                            "Invalid",
                            "metadata.resourceVersion",
                            "0x0",
                            "must be specified for an update",
                        )
                    ],
                )
        body = obj

        def replace(current: Obj) -> Obj:
            del current
            copied: Obj = loads(dumps(body))
            return copied

        return await self._update(
            rt,
            namespace,
            name,
            replace,
            options=options,
            ctx=ctx,
            subresource=subresource,
            precondition=wanted or None,
            create_body=obj if rt.allow_create_on_update and not subresource else None,
        )

    async def patch(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        patch_type: str,
        body: Any,
        *,
        options: WriteOptions | None = None,
        ctx: RequestContext | None = None,
        subresource: str = "",
    ) -> tuple[StoredObject, bool]:
        """Apply a patch of ``patch_type`` (body already decoded).

        Returns the stored object and whether the patch created it (server-side apply).
        """
        options = options or WriteOptions()
        ctx = ctx or RequestContext()
        allowed = _CUSTOM_PATCH_TYPES if rt.custom else PATCH_TYPES
        if patch_type not in allowed:
            raise unsupported_media_type(patch_type, allowed)
        if patch_type == "application/apply-patch+yaml":
            return await self._apply(
                rt, namespace, name, body, options=options, ctx=ctx, subresource=subresource
            )
        if patch_type == "application/json-patch+json":
            if not isinstance(body, list):
                raise bad_request(
                    f"json: cannot unmarshal {type(body).__name__} into Go value of type "
                    "jsonpatch.Patch"
                )
        else:
            body = ensure_object(body)
        precondition = None
        if isinstance(body, dict):
            meta = body.get("metadata")
            if isinstance(meta, dict) and meta.get("resourceVersion"):
                precondition = str(meta["resourceVersion"])
        schema = rt.schema

        def mutate(current: Obj) -> Obj:
            try:
                if patch_type == "application/merge-patch+json":
                    result = merge_patch(current, body)
                elif patch_type == "application/json-patch+json":
                    result = json_patch(current, body)
                else:
                    result = strategic_merge(current, body, schema)
            except JsonPatchTooLarge as error:
                raise StatusError(413, "RequestEntityTooLarge", str(error)) from None
            except JsonPatchError as error:
                raise StatusError(
                    422,
                    "Invalid",
                    str(error),
                    {"causes": [{"reason": "UnexpectedServerResponse", "message": str(error)}]},
                ) from None
            except StrategicPatchError as error:
                raise bad_request(str(error)) from None
            if patch_type == "application/json-patch+json" and (
                nesting_depth(result, MAX_DEPTH) > MAX_DEPTH
            ):
                # Merge and strategic patches put values where the body had them; a JSON patch
                # can add a deep value at a deep path.
                raise _too_deep(rt, name)
            return ensure_object(result)

        return await self._update(
            rt,
            namespace,
            name,
            mutate,
            options=options,
            ctx=ctx,
            subresource=subresource,
            precondition=precondition,
        )

    async def _apply(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: Any,
        *,
        options: WriteOptions,
        ctx: RequestContext,
        subresource: str,
    ) -> tuple[StoredObject, bool]:
        applied = ensure_object(body)
        if not options.field_manager:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
        self._check_type(rt, applied)
        meta = applied.setdefault("metadata", {})
        if meta.get("name") and meta["name"] != name:
            raise bad_request(
                f"the name of the object ({meta['name']}) does not match the name on the URL "
                f"({name})"
            )
        schema = rt.schema
        now = format_time(self.clock())
        current = await self.store.get(rt.gr, namespace if rt.namespaced else "", name)
        if current is None and not subresource:
            merged = apply_config(
                None,
                applied,
                schema,
                manager=options.field_manager,
                api_version=rt.api_version,
                force=options.force,
                now=now,
            )
            merged["metadata"]["name"] = name
            managed = merged["metadata"].pop("managedFields")
            created = await self._create_applied(
                rt, namespace, merged, managed=managed, options=options, ctx=ctx
            )
            return created, True

        def mutate(live: Obj) -> Obj:
            try:
                return apply_config(
                    live,
                    applied,
                    schema,
                    manager=options.field_manager,
                    api_version=rt.api_version,
                    force=options.force,
                    now=now,
                )
            except ApplyConflict as error:
                raise _apply_conflict(rt, name, error) from None

        precondition = str(meta["resourceVersion"]) if meta.get("resourceVersion") else None
        return await self._update(
            rt,
            namespace,
            name,
            mutate,
            options=options,
            ctx=ctx,
            subresource=subresource,
            precondition=precondition,
        )

    async def _create_applied(
        self,
        rt: ResourceType,
        namespace: str,
        obj: Obj,
        *,
        managed: list[Obj],
        options: WriteOptions,
        ctx: RequestContext,
    ) -> StoredObject:
        # Create, then record field ownership (create drops client-sent managedFields).
        stored = await self.create(rt, namespace, obj, options, ctx)
        if options.dry_run:
            return stored
        final = loads(stored.data)
        final["metadata"]["managedFields"] = managed
        try:
            return await self.store.update(rt.gr, final, self.index(rt, final), stored.rv)
        except ConflictError as error:
            return error.current

    async def _update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        mutate: Any,
        *,
        options: WriteOptions,
        ctx: RequestContext,
        subresource: str,
        precondition: str | None,
        create_body: Obj | None = None,
    ) -> tuple[StoredObject, bool]:
        ns = namespace if rt.namespaced else ""
        status_only = subresource == "status"
        keep_status = (
            "status" in rt.subresources and rt.preserve_status_on_update and not subresource
        )
        for _ in range(_RETRIES):
            current = await self.store.get(rt.gr, ns, name)
            if current is None:
                if create_body is not None:
                    return await self.create(rt, namespace, create_body, options, ctx), True
                raise not_found(rt.group, rt.plural, name)
            if precondition is not None and precondition != str(current.rv):
                raise conflict(rt.group, rt.plural, name, STALE_OBJECT)
            old = self.decode(rt, current)
            new = mutate(self.decode(rt, current))
            new_meta = new.get("metadata")
            if not isinstance(new_meta, dict):
                new_meta = new["metadata"] = {}
            if (
                str(new_meta.get("resourceVersion", current.rv)) != str(current.rv)
                and precondition is None
            ):
                raise conflict(rt.group, rt.plural, name, STALE_OBJECT)
            old_meta = old["metadata"]
            if status_only:
                self._prune(rt, new, options, ctx, status_only=True)
                if new.get("status", _ABSENT) == old.get("status", _ABSENT):
                    return current, False
                result = old
                if self.admission.active(rt, "UPDATE", subresource):
                    old = self.decode(rt, current)
                if "status" in new:
                    result["status"] = new["status"]
                else:
                    result.pop("status", None)
                new = result
                new_meta = result["metadata"]
            else:
                self._check_type(rt, new)
                if new_meta.get("uid") and new_meta["uid"] != old_meta.get("uid"):
                    raise invalid(
                        rt.group,
                        rt.kind,
                        name,
                        [
                            FieldError(
                                "Invalid", "metadata.uid", new_meta["uid"], "field is immutable"
                            )
                        ],
                    )
                for key in _SYSTEM_META:
                    if key in old_meta:
                        new_meta[key] = old_meta[key]
                    else:
                        new_meta.pop(key, None)
                new_meta["name"] = name
                if rt.namespaced:
                    new_meta["namespace"] = namespace
                if "managedFields" not in new_meta and "managedFields" in old_meta:
                    new_meta["managedFields"] = old_meta["managedFields"]
                if keep_status:
                    if "status" in old:
                        new["status"] = old["status"]
                    else:
                        new.pop("status", None)
                self._prune(rt, new, options, ctx)
                self._default(rt, new)
                rt.strategy.prepare_update(new, old)
                if rt.has_generation and _spec_part(new, "status" in rt.subresources) != _spec_part(
                    old, "status" in rt.subresources
                ):
                    new_meta["generation"] = int(old_meta.get("generation", 0)) + 1
            new_meta["resourceVersion"] = str(current.rv)
            if not status_only and new == old:
                return current, False
            if self.admission.active(rt, "UPDATE", subresource):
                attributes = self._attributes(
                    rt,
                    operation="UPDATE",
                    namespace=namespace,
                    name=name,
                    subresource=subresource,
                    old=old,
                    ctx=ctx,
                    dry_run=options.dry_run,
                    options={},
                )
                new = await self.admission.mutate(attributes, new)
                self._validate(rt, new, old, status_only=status_only)
                await self.admission.validate(attributes, new)
            else:
                self._validate(rt, new, old, status_only=status_only)
            if new_meta.get("deletionTimestamp") and not _finalizers_pending(rt, new):
                outcome = await self._remove(rt, current, new, options.dry_run)
                if outcome is None:
                    continue
                return outcome, False
            self.to_storage(rt, new)
            if options.dry_run:
                return self._fake_stored(rt, new), False
            try:
                return await self.store.update(rt.gr, new, self.index(rt, new), current.rv), False
            except ConflictError:
                if precondition is not None:
                    raise conflict(rt.group, rt.plural, name, STALE_OBJECT) from None
            except KeyNotFoundError:
                raise not_found(rt.group, rt.plural, name) from None
        raise conflict(rt.group, rt.plural, name, STALE_OBJECT)

    async def _remove(
        self, rt: ResourceType, current: StoredObject, final: Obj, dry_run: bool
    ) -> StoredObject | None:
        """Delete for good; ``None`` when the object changed meanwhile (caller retries)."""
        self.to_storage(rt, final)
        if dry_run:
            return self._fake_stored(rt, final)
        try:
            return await self.store.delete(rt.gr, final, self.index(rt, final), current.rv)
        except ConflictError:
            return None
        except KeyNotFoundError:
            raise not_found(rt.group, rt.plural, current.name) from None

    # ------------------------------------------------------------------ delete

    async def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        options: DeleteOptions | None = None,
        ctx: RequestContext | None = None,
    ) -> DeleteOutcome:
        """Delete now, or mark for deletion while finalizers remain."""
        options = options or DeleteOptions()
        ctx = ctx or RequestContext()
        ns = namespace if rt.namespaced else ""
        for _ in range(_RETRIES):
            current = await self.store.get(rt.gr, ns, name)
            if current is None:
                raise not_found(rt.group, rt.plural, name)
            if options.precondition_uid is not None and options.precondition_uid != current.uid:
                raise conflict(
                    rt.group,
                    rt.plural,
                    name,
                    f"Precondition failed: UID in precondition: {options.precondition_uid}, UID "
                    f"in object meta: {current.uid}",
                )
            if options.precondition_rv is not None and options.precondition_rv != str(current.rv):
                raise conflict(
                    rt.group,
                    rt.plural,
                    name,
                    "Precondition failed: ResourceVersion in precondition: "
                    f"{options.precondition_rv}, "
                    f"ResourceVersion in object meta: {current.rv}",
                )
            obj = self.decode(rt, current)
            if self.admission.active(rt, "DELETE", ""):
                attributes = self._attributes(
                    rt,
                    operation="DELETE",
                    namespace=namespace,
                    name=name,
                    subresource="",
                    old=obj,
                    ctx=ctx,
                    dry_run=options.dry_run,
                    options={
                        "kind": "DeleteOptions",
                        "apiVersion": "meta.k8s.io/v1",
                        **(
                            {"propagationPolicy": options.propagation_policy}
                            if options.propagation_policy
                            else {}
                        ),
                    },
                )
                await self.admission.validate(attributes, None)
            meta = obj["metadata"]
            finalizers = list(meta.get("finalizers") or [])
            policy = options.propagation_policy
            if policy == "Foreground" and "foregroundDeletion" not in finalizers:
                finalizers = [f for f in finalizers if f != "orphan"] + ["foregroundDeletion"]
            elif policy == "Orphan" and "orphan" not in finalizers:
                finalizers = [f for f in finalizers if f != "foregroundDeletion"] + ["orphan"]
            elif policy == "Background":
                finalizers = [f for f in finalizers if f not in ("orphan", "foregroundDeletion")]
            unchanged = finalizers == list(meta.get("finalizers") or [])
            if finalizers:
                meta["finalizers"] = finalizers
            else:
                meta.pop("finalizers", None)
            grace = _graceful_period(rt, obj, options)
            if grace:
                # kube-apiserver's graceful deletion (Pods): the object stays, Terminating, until
                # its node has stopped it and deletes it with grace 0; a later delete may only
                # shorten the period.
                previous = meta.get("deletionGracePeriodSeconds")
                if meta.get("deletionTimestamp") and previous is not None:
                    if int(previous) <= grace and unchanged:
                        return DeleteOutcome(current, False)
                    grace = min(grace, int(previous))
                meta["deletionTimestamp"] = format_time(self.clock() + dt.timedelta(seconds=grace))
                meta["deletionGracePeriodSeconds"] = grace
                if meta.get("generation"):
                    meta["generation"] = int(meta["generation"]) + 1
                self.to_storage(rt, obj)
                if options.dry_run:
                    return DeleteOutcome(self._fake_stored(rt, obj), False)
                try:
                    terminating = await self.store.update(
                        rt.gr, obj, self.index(rt, obj), current.rv
                    )
                except ConflictError:
                    continue
                return DeleteOutcome(terminating, False)
            if not _finalizers_pending(rt, obj):
                removed = await self._remove(rt, current, obj, options.dry_run)
                if removed is None:
                    continue
                return DeleteOutcome(removed, True, obj)
            if meta.get("deletionTimestamp") and unchanged:
                return DeleteOutcome(current, False)
            if not meta.get("deletionTimestamp"):
                meta["deletionTimestamp"] = format_time(self.clock())
                meta["deletionGracePeriodSeconds"] = 0
                if meta.get("generation"):
                    meta["generation"] = int(meta["generation"]) + 1
            if rt.gr == NAMESPACES:
                obj.setdefault("status", {})["phase"] = "Terminating"
            self.to_storage(rt, obj)
            if options.dry_run:
                return DeleteOutcome(self._fake_stored(rt, obj), False)
            try:
                stored = await self.store.update(rt.gr, obj, self.index(rt, obj), current.rv)
            except ConflictError:
                continue
            return DeleteOutcome(stored, False)
        raise conflict(rt.group, rt.plural, name, STALE_OBJECT)

    async def finalize_namespace(
        self, name: str, finalizers: list[str], ctx: RequestContext | None = None
    ) -> StoredObject:
        """Set a namespace's ``spec.finalizers`` (the ``finalize`` subresource).

        A terminating namespace whose finalizers are all gone is removed.
        """
        rt = self.catalog.lookup("", "v1", "namespaces")
        assert rt is not None
        for _ in range(_RETRIES):
            current = await self.require(rt, "", name)
            obj = loads(current.data)
            obj.setdefault("spec", {})["finalizers"] = finalizers
            if (
                obj["metadata"].get("deletionTimestamp")
                and not finalizers
                and not obj["metadata"].get("finalizers")
            ):
                stored = await self._remove(rt, current, obj, False)
            else:
                try:
                    stored = await self.store.update(rt.gr, obj, self.index(rt, obj), current.rv)
                except ConflictError:
                    stored = None
            if stored is not None:
                return stored
        raise conflict("", "namespaces", name, STALE_OBJECT)


def _graceful_period(rt: ResourceType, obj: Obj, options: DeleteOptions) -> int:
    """Seconds a deleted object stays Terminating (0: removed at once), by kube-apiserver's Pod
    strategy: the request's ``gracePeriodSeconds``, else the Pod's
    ``terminationGracePeriodSeconds``; 0 for a Pod that is not bound to a node or has finished;
    other kinds are never graceful."""
    if rt.gr != PODS:
        return 0
    spec = obj.get("spec") or {}
    phase = (obj.get("status") or {}).get("phase")
    if not spec.get("nodeName") or phase in ("Succeeded", "Failed"):
        return 0
    period = options.grace_period_seconds
    if period is None:
        period = spec.get("terminationGracePeriodSeconds", 30)
    try:
        seconds = int(period)
    except (TypeError, ValueError):
        seconds = 30
    return 1 if seconds < 0 else seconds


def _too_deep(rt: ResourceType, name: str) -> StatusError:
    return invalid(
        rt.group,
        rt.kind,
        name,
        [
            FieldError(
                "Invalid",
                "",
                detail=f"the patched object nests arrays and objects more than {MAX_DEPTH} "
                "levels deep",
            )
        ],
    )


def _finalizers_pending(rt: ResourceType, obj: Obj) -> bool:
    """Whether finalizers still hold a deleted object (namespaces: ``spec.finalizers`` too)."""
    if obj["metadata"].get("finalizers"):
        return True
    return rt.gr == NAMESPACES and bool((obj.get("spec") or {}).get("finalizers"))


def _apply_conflict(rt: ResourceType, name: str, error: ApplyConflict) -> StatusError:
    count = len(error.conflicts)
    lines = [
        f'conflict with "{manager}"' + (f" using {version}" if version else "") + f": {path}"
        for manager, version, path in error.conflicts
    ]
    message = f"Apply failed with {count} conflict{'s' if count != 1 else ''}: " + "\n".join(lines)
    causes = [
        {
            "reason": "FieldManagerConflict",
            "message": f'conflict with "{m}"' + (f" using {v}" if v else ""),
            "field": p,
        }
        for m, v, p in error.conflicts
    ]
    details: Obj = {"name": name, "kind": rt.plural, "causes": causes}
    if rt.group:
        details["group"] = rt.group
    return StatusError(409, "Conflict", message, details)
