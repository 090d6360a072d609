"""The rest connector: a JSON API described in the manifest (docs/rest.md)."""
