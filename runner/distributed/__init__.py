"""The distributed mode (issue 26, ``pip install 'provision[distributed]'``): runs taken by a pool
of Celery workers instead of cron on one machine.

What is built: a whole run as one task (``provision.run``), acknowledged late so that a worker
killed mid-run loses nothing (the broker redelivers the task; the next attempt takes the dead
run's lock over and its crash recovery settles what was in flight). What is not yet: a run fanned
out into slices; docs/distributed.md has the plan.

Layer: between the command line and the engine (tests/test_layers.py): it calls the engine like
``provision run`` does, and only the command line imports it. Celery is imported only here, so
single-machine ``provision run`` never needs it.
"""
