"""Discovery of job types: every module in ``jobs/`` with a ``JOB_TYPE`` and its schema.

Adding a job type means adding ``jobs/{name}.py`` and ``schemas/{name}.json``;
nothing else needs editing.
"""

from __future__ import annotations

import functools
import importlib
import json
import pkgutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

import jobs
from jobs.base import JobType

#: Folder of the JSON Schemas, one per job type.
SCHEMAS_DIR = Path(__file__).resolve().parent.parent / "schemas"

_INFRASTRUCTURE = frozenset({"base", "celery_app", "errors", "parameters", "registry",
                             "runner"})


@dataclass(frozen=True)
class RegisteredJobType:
    """A job type together with its parameter schema."""

    job_type: JobType
    schema: dict[str, Any]

    @property
    def name(self) -> str:
        return self.job_type.name


@functools.cache
def job_types() -> dict[str, RegisteredJobType]:
    """All job types, by name."""
    found: dict[str, RegisteredJobType] = {}
    for module_info in pkgutil.iter_modules(jobs.__path__):
        if module_info.name in _INFRASTRUCTURE or module_info.name.startswith("_"):
            continue
        module = importlib.import_module(f"jobs.{module_info.name}")
        job_type = getattr(module, "JOB_TYPE", None)
        if not isinstance(job_type, JobType):
            continue
        schema_path = SCHEMAS_DIR / f"{job_type.name}.json"
        schema = json.loads(schema_path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        for name in schema.get("properties", {}):
            if name != name.lower():
                raise ValueError(f"{schema_path}: parameter {name!r} must be lower case")
        found[job_type.name] = RegisteredJobType(job_type, schema)
    return found


def get(name: str) -> RegisteredJobType | None:
    return job_types().get(name)
