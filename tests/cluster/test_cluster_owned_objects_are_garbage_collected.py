"""The garbage collector deletes what a Routine owns (child Routines, ConfigMaps) after the Routine is deleted."""

from __future__ import annotations

import kubernetes.client

from tests.cluster import lookups, manifests, models, waiting


def test_children_of_deleted_routine_are_garbage_collected(
    k8s_api: kubernetes.client.ApiClient, k8s_namespace: str
) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    core = kubernetes.client.CoreV1Api(k8s_api)
    routines = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES)
    parent = models.json_object(
        objects.create_namespaced_custom_object(*routines, manifests.routine("parent", routineID="reports.build"))
    )
    owner = {
        "apiVersion": manifests.API_VERSION,
        "kind": "Routine",
        "name": "parent",
        "uid": parent["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    child = manifests.routine("child", routineID="reports.part")
    child["metadata"]["ownerReferences"] = [owner]
    objects.create_namespaced_custom_object(*routines, child)
    core.create_namespaced_config_map(
        k8s_namespace,
        kubernetes.client.V1ConfigMap.model_validate(
            {"metadata": {"name": "parent-data", "ownerReferences": [owner]}, "data": {"k": "v"}}
        ),
    )

    objects.delete_namespaced_custom_object(*routines, "parent")

    waiting.wait_for(
        lambda: lookups.is_gone(core.read_namespaced_config_map, "parent-data", k8s_namespace),
        timeout=30,
        what="the owned ConfigMap to be garbage-collected",
    )
    waiting.wait_for(
        lambda: lookups.is_gone(objects.get_namespaced_custom_object, *routines, "child"),
        timeout=30,
        what="the child Routine to be garbage-collected",
    )


def test_objects_without_owner_are_kept(k8s_api: kubernetes.client.ApiClient, k8s_namespace: str) -> None:
    objects = kubernetes.client.CustomObjectsApi(k8s_api)
    core = kubernetes.client.CoreV1Api(k8s_api)
    routines = (manifests.GROUP, manifests.VERSION, k8s_namespace, manifests.ROUTINES)
    parent = models.json_object(
        objects.create_namespaced_custom_object(*routines, manifests.routine("parent", routineID="a"))
    )
    owned = {"apiVersion": manifests.API_VERSION, "kind": "Routine", "name": "parent", "uid": parent["metadata"]["uid"]}
    core.create_namespaced_config_map(
        k8s_namespace,
        kubernetes.client.V1ConfigMap.model_validate({"metadata": {"name": "owned", "ownerReferences": [owned]}}),
    )
    core.create_namespaced_config_map(
        k8s_namespace, kubernetes.client.V1ConfigMap.model_validate({"metadata": {"name": "unowned"}})
    )

    objects.delete_namespaced_custom_object(*routines, "parent")
    waiting.wait_for(
        lambda: lookups.is_gone(core.read_namespaced_config_map, "owned", k8s_namespace),
        timeout=30,
        what="the owned ConfigMap to be garbage-collected",
    )

    assert lookups.exists(core.read_namespaced_config_map, "unowned", k8s_namespace)
