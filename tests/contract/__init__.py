"""The connector contract suite: one set of tests every connector passes for what it declares."""
