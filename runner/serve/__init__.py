"""``provision serve``: a SCIM 2.0 endpoint that Microsoft Entra provisions into (issue 23).

This package is the HTTP protocol layer, one concept a module:

* ``app.py``: the starlette app (routes, authentication, rate limit, responses);
* ``server.py``: running it under uvicorn, with TLS;
* ``store.py``: the :class:`~runner.serve.store.ResourceStore` protocol it keeps resources through,
  and an in-memory store for tests;
* ``schema.py``: the resource types served and the discovery documents;
* ``conform.py``: request bodies to the shape a store keeps;
* ``filters.py``: filters and attribute paths (the ``eq``/``and`` subset Entra sends);
* ``patch.py``: PATCH operations, parsed and applied;
* ``projection.py``: ``attributes``/``excludedAttributes`` and the schema's ``returned`` rules;
* ``ratelimit.py``: the token bucket; ``errors.py``: the SCIM errors;
* ``pipeline.py``: :class:`~runner.serve.pipeline.PipelineStore`, the ``ResourceStore`` of
  ``provision serve FILE``: what the client sends becomes the source objects of the manifest's
  ``scim-endpoint`` object types in the state store, each request exported to the target at once.
"""
