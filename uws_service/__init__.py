"""vocloud's service side: configuration, database, job store and the web application.

The package root imports nothing heavy: ``jobs/`` imports the Flask-free
``uws_service.models``, ``uws_service.store`` and ``uws_service.config``
without pulling in Flask.  The application factory lives in
``uws_service.app``.
"""
