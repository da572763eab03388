"""Job types and their execution: one module per job type, run by Celery workers.

Never imports Flask; from ``uws_service`` only the Flask-free ``config``,
``db``, ``models``, ``store``, ``storage`` and ``storage_fsspec`` modules.
"""
