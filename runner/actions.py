"""What the engine does to one target object: the closed vocabulary of actions.

One enum instead of strings spread through compute, the state store, the export, the deletion
guard and the CLI, so a misspelt action is an AttributeError where it is written, not a branch
that silently never runs. The values are what the state store keeps in ``pending_exports.action``
and what the provisioning log, ``--output json`` and plans show, so they are stable text; an
:class:`Action` compares equal to its value (a ``StrEnum``).
"""

from __future__ import annotations

from enum import StrEnum


class Action(StrEnum):
    ADD = "add"
    UPDATE = "update"
    RENAME = "rename"  # a new name or partition (a move), with any attribute changes after it
    DISABLE = "disable"
    DELETE = "delete"
    #: the delete half of a replace pair that must go first (a name only one object may hold)
    DELETE_FIRST = "delete_first"
    #: delete + add of one object as a single operation (DeleteAddAsReplace)
    REPLACE = "replace"
    SET_PASSWORD = "set_password"  # the second step of an add or update whose password could not go in the first


#: actions after which the object no longer exists in the target
REMOVALS = (Action.DELETE, Action.DELETE_FIRST)
#: actions that create an object
CREATIONS = (Action.ADD, Action.REPLACE)
#: the counter of the run summary each action counts in
COUNTED_AS = {Action.ADD: "added", Action.UPDATE: "updated", Action.RENAME: "renamed", Action.DISABLE: "disabled",
              Action.DELETE: "deleted", Action.DELETE_FIRST: "deleted", Action.REPLACE: "added",
              Action.SET_PASSWORD: "updated"}
