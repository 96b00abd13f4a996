"""The operator process: the directive service and kopf in one process, on one event loop.

:func:`operate` wires the parts and runs until SIGINT/SIGTERM (kopf handles the signals):

1. the Kubernetes client, with the in-cluster or kubeconfig credentials;
2. the Routine store, which reflects runs into Routines;
3. the directive service; starting it loads the Routines and restores their runs
   *before* it listens, so ``/readyz`` answering means the state is rebuilt;
4. kopf, watching Routines in the given namespaces (or all), standalone (no peering).

On the way out kopf stops first, then the service, which writes the statuses still
dirty (for a few seconds at most) before it closes the client.
"""

from __future__ import annotations

import logging

import kopf

from workpath import directives
from workpath_operator import (
    authenticating,
    clients,
    handling,
    reconciling,
    reflecting,
    serving,
    settings,
)

logger = logging.getLogger("workpath.operator")


async def operate(config: settings.ServiceSettings, options: settings.OperatorSettings) -> int:
    """Run the operator until it is stopped; the process exit code."""
    configuration = await clients.load_configuration()
    async with clients.KubernetesClient(configuration) as client:
        service: serving.DirectiveService

        def cancel(run_id: directives.RunID, reason: str) -> None:
            service.dispatcher.cancel(run_id, reason=reason)

        store = reflecting.RoutineStore(
            client, options=options, on_vanished=cancel, finished_kept=config.finished_runs_kept
        )
        service = serving.DirectiveService(
            config=config, store=store, authenticator=authenticator(client, config, options)
        )
        try:
            await service.start()
            reconciler = reconciling.Reconciler(store=store, dispatcher=service.dispatcher)
            scope = "all namespaces" if options.all_namespaces else "namespace(s) " + ", ".join(options.namespaces)
            logger.info("serving Routines in %s; workers connect to %s", scope, service.url)
            await kopf.operator(
                registry=handling.registry(reconciler, configuration=configuration),
                settings=handling.settings(),
                standalone=True,
                clusterwide=options.all_namespaces,
                namespaces=options.namespaces,
                liveness_endpoint=options.liveness_endpoint,
            )
        finally:
            await service.stop()
    return 0


def authenticator(
    client: clients.KubernetesClient, config: settings.ServiceSettings, options: settings.OperatorSettings
) -> serving.Authenticator:
    """The shared token if one is set, then TokenReview if enabled; at least one of them."""
    choices: list[serving.Authenticator] = []
    if config.token:
        choices.append(serving.SharedTokenAuthenticator(config.token))
    if options.token_review:
        choices.append(
            authenticating.TokenReviewAuthenticator(
                client,
                audience=options.token_audience,
                allowed=options.allowed_service_accounts,
                cache_seconds=options.token_cache_seconds,
                cache_size=options.token_cache_size,
            )
        )
    if not choices:
        raise ValueError("workers could not authenticate: enable --token-review or give --token (WORKPATH_TOKEN)")
    return choices[0] if len(choices) == 1 else authenticating.AnyOfAuthenticator(choices)
