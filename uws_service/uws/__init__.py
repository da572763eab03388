"""The one UWS 1.1 implementation: a service layer and a blueprint factory.

Mount it at any job-list root: ``/uws/{jobtype}`` for the job types in
``jobs/``; later ``/tap/async``, ``/soda/async`` and ``/vospace/transfers``
with a fixed job type and their own error renderer.
"""
