"""``scim-endpoint``: a source that is written to, not read: what Microsoft Entra (or any SCIM
client) sends to ``provision serve`` (issue 23).

``provision serve FILE`` stores each resource the client sends as the source record of its
anchor, the SCIM ``id`` the endpoint assigns, and provisions it at once (``runner/serve/pipeline.py``).
This connector is the source's declaration for everything else: validation knows its objects
(``Users``, ``Groups``), and a run (``provision run``) that reads it finds no changes. It declares
``delta_read`` and always answers with no records, so a run never takes its empty read for
"everyone was deleted": a delta read reports nothing deleted, and the first, full read (no
watermark yet) says why it is empty, so the deletion guard refuses it if objects are there.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from runner.connectors.base import Capabilities, Connector, Page

#: the watermark every read returns: there is never anything new to read
WATERMARK = "provision-serve"
OBJECTS = ("Users", "Groups")
EMPTY = ("a scim-endpoint source holds only what `provision serve` received; it has nothing to read, "
         "and an empty read is never a deletion")


class ScimEndpointConnector(Connector):
    type_name = "scim-endpoint"
    config_schema = {
        "type": "object",
        "description": "A SCIM 2.0 endpoint that `provision serve` answers: what the client sends becomes "
                       "this source's objects (Users, Groups), anchored by their SCIM id. Runs read nothing from it.",
        "properties": {"type": {"const": "scim-endpoint"}},
        "additionalProperties": False,
    }

    def capabilities(self, object: str | None = None) -> Capabilities:
        return Capabilities(delta_read=True, full_export=False, operations=frozenset())

    def object_names(self) -> Sequence[str]:
        return OBJECTS

    def read(self, object: str, partition: str | None = None, watermark: str | None = None, *,
             attributes: Sequence[str] | None = None, page_size: int | None = None) -> Iterator[Page]:
        """No records, ever; the watermark makes later runs delta reads."""
        yield Page([], watermark=WATERMARK, source_empty=None if watermark is not None else EMPTY)
