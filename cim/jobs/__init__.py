"""The durable job queue (``import_job``) and the worker loop that runs its jobs.

:mod:`cim.jobs.queue` holds the SQL of the queue; :mod:`cim.jobs.worker` the thread that claims
and runs jobs through handlers the composition roots (``api``, ``cli``) give it, so core code
never imports the importers or the tilers.
"""
