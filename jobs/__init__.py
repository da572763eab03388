"""Job types and their execution: one module per job type, run by Celery workers.

Never imports Flask.  From ``uws_service`` only the Flask-free modules:
``config``, ``db``, ``models``, ``store``, ``storage`` (and ``storage_fsspec``),
and the file store's service layer ``filestore`` with what it needs
(``users.Principal``, ``errors``), so that a job writes into a user's
store under exactly the rules of an upload.
"""
