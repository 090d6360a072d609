"""Built-in connectors and the plugin registry (see base.py for the interface)."""
