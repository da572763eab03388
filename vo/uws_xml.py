"""UWS 1.1 documents as typed values, written as XML (the standard) or JSON (the portal).

Element order, nil elements and attributes follow ``UWS.xsd`` (UWS 1.1,
REC 2016-10-24, appendix B): ``ownerId``, ``startTime``, ``endTime`` and
``destruction`` are always present, ``xsi:nil`` when empty, and
``<uws:results/>`` is present even when empty.  ``version="1.1"`` is written
on ``job`` and ``jobs`` (section 2.2, required by the text although the
schema keeps it optional).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from lxml import etree

from vo.timefmt import format_time

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
VOCLOUD_NS = "urn:vocloud:uws"
NSMAP = {"uws": UWS_NS, "xlink": XLINK_NS, "xsi": XSI_NS}
UWS_VERSION = "1.1"

_U = f"{{{UWS_NS}}}"
_NIL = f"{{{XSI_NS}}}nil"
_HREF = f"{{{XLINK_NS}}}href"
_TYPE = f"{{{XLINK_NS}}}type"


@dataclass(frozen=True)
class Parameter:
    """``uws:parameter``: a value, or a URL to it when ``by_reference``."""

    id: str
    value: str
    by_reference: bool = False
    is_post: bool = False


@dataclass(frozen=True)
class ResultReference:
    """``uws:result``: a link to one result of a job."""

    id: str
    href: str
    size: int | None = None
    mime_type: str | None = None


@dataclass(frozen=True)
class ErrorSummary:
    """``uws:errorSummary``: why a job ended in ERROR (or was aborted)."""

    message: str
    type: str = "fatal"
    has_detail: bool = False


@dataclass(frozen=True)
class JobInfo:
    """vocloud's ``uws:jobInfo``: progress of a running job and its job type."""

    job_type: str
    progress: float | None = None
    progress_message: str | None = None


@dataclass(frozen=True)
class JobSummary:
    """``uws:job``: everything about one job."""

    job_id: str
    phase: str
    owner_id: str | None
    creation_time: datetime
    execution_duration: int
    run_id: str | None = None
    quote: datetime | None = None
    start_time: datetime | None = None
    end_time: datetime | None = None
    destruction: datetime | None = None
    parameters: list[Parameter] = field(default_factory=list)
    results: list[ResultReference] = field(default_factory=list)
    error_summary: ErrorSummary | None = None
    job_info: JobInfo | None = None


@dataclass(frozen=True)
class ShortJobDescription:
    """``uws:jobref``: one entry of a job list."""

    job_id: str
    href: str
    phase: str
    owner_id: str | None
    creation_time: datetime
    run_id: str | None = None


# XML ------------------------------------------------------------------------


#: Characters XML 1.0 cannot carry (section 2.2, "Characters").
XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """``text`` with characters XML cannot carry replaced by U+FFFD.

    Messages and file names written by jobs (a subprocess's coloured
    output, say) must never make a job document unwritable.
    """
    return XML_INVALID.sub("\ufffd", text)


def _text(parent: etree._Element, name: str, value: str | None, *,
          nillable: bool = False) -> None:
    if value is None and not nillable:
        return
    element = etree.SubElement(parent, _U + name)
    if value is None:
        element.set(_NIL, "true")
    else:
        element.text = xml_safe(value)


def _parameters_element(parameters: list[Parameter]) -> etree._Element:
    element = etree.Element(_U + "parameters", nsmap=NSMAP)
    for p in parameters:
        child = etree.SubElement(element, _U + "parameter", id=xml_safe(p.id))
        if p.by_reference:
            child.set("byReference", "true")
        if p.is_post:
            child.set("isPost", "true")
        child.text = xml_safe(p.value)
    return element


def _results_element(results: list[ResultReference]) -> etree._Element:
    element = etree.Element(_U + "results", nsmap=NSMAP)
    for r in results:
        child = etree.SubElement(element, _U + "result", id=xml_safe(r.id))
        child.set(_TYPE, "simple")
        child.set(_HREF, xml_safe(r.href))
        if r.size is not None:
            child.set("size", str(r.size))
        if r.mime_type:
            child.set("mime-type", r.mime_type)
    return element


def _serialize(element: etree._Element) -> bytes:
    return etree.tostring(element, xml_declaration=True, encoding="UTF-8")


def job_element(job: JobSummary) -> etree._Element:
    root = etree.Element(_U + "job", nsmap=NSMAP, version=UWS_VERSION)
    _text(root, "jobId", job.job_id)
    _text(root, "runId", job.run_id)
    _text(root, "ownerId", job.owner_id, nillable=True)
    _text(root, "phase", job.phase)
    _text(root, "quote", format_time(job.quote), nillable=True)
    _text(root, "creationTime", format_time(job.creation_time))
    _text(root, "startTime", format_time(job.start_time), nillable=True)
    _text(root, "endTime", format_time(job.end_time), nillable=True)
    _text(root, "executionDuration", str(job.execution_duration))
    _text(root, "destruction", format_time(job.destruction), nillable=True)
    root.append(_parameters_element(job.parameters))
    root.append(_results_element(job.results))
    if job.error_summary is not None:
        summary = etree.SubElement(root, _U + "errorSummary", type=job.error_summary.type,
                                   hasDetail="true" if job.error_summary.has_detail else "false")
        _text(summary, "message", job.error_summary.message)
    if job.job_info is not None:
        info = etree.SubElement(root, _U + "jobInfo")
        extra = etree.SubElement(info, f"{{{VOCLOUD_NS}}}jobType", nsmap={"vc": VOCLOUD_NS})
        extra.text = job.job_info.job_type
        if job.job_info.progress is not None:
            progress = etree.SubElement(info, f"{{{VOCLOUD_NS}}}progress",
                                        nsmap={"vc": VOCLOUD_NS})
            progress.text = f"{job.job_info.progress:.4g}"
        if job.job_info.progress_message:
            message = etree.SubElement(info, f"{{{VOCLOUD_NS}}}message",
                                       nsmap={"vc": VOCLOUD_NS})
            message.text = xml_safe(job.job_info.progress_message)
    return root


def job_to_xml(job: JobSummary) -> bytes:
    """The ``uws:job`` document."""
    return _serialize(job_element(job))


def jobs_to_xml(jobs: list[ShortJobDescription]) -> bytes:
    """The ``uws:jobs`` document (a job list)."""
    root = etree.Element(_U + "jobs", nsmap=NSMAP, version=UWS_VERSION)
    for j in jobs:
        ref = etree.SubElement(root, _U + "jobref", id=j.job_id)
        ref.set(_TYPE, "simple")
        ref.set(_HREF, j.href)
        _text(ref, "phase", j.phase)
        _text(ref, "runId", j.run_id)
        _text(ref, "ownerId", j.owner_id, nillable=True)
        _text(ref, "creationTime", format_time(j.creation_time))
    return _serialize(root)


def parameters_to_xml(parameters: list[Parameter]) -> bytes:
    """The ``uws:parameters`` document."""
    return _serialize(_parameters_element(parameters))


def results_to_xml(results: list[ResultReference]) -> bytes:
    """The ``uws:results`` document."""
    return _serialize(_results_element(results))


# JSON -----------------------------------------------------------------------


def _parameters_json(parameters: list[Parameter]) -> list[dict[str, Any]]:
    return [{"id": p.id, "value": p.value, "byReference": p.by_reference,
             "isPost": p.is_post} for p in parameters]


def _results_json(results: list[ResultReference]) -> list[dict[str, Any]]:
    return [{"id": r.id, "href": r.href, "size": r.size, "mimeType": r.mime_type}
            for r in results]


def job_to_json(job: JobSummary) -> dict[str, Any]:
    """The job document as JSON, with the XML's element names and nulls for nil."""
    return {
        "version": UWS_VERSION,
        "jobId": job.job_id,
        "runId": job.run_id,
        "ownerId": job.owner_id,
        "phase": job.phase,
        "quote": format_time(job.quote),
        "creationTime": format_time(job.creation_time),
        "startTime": format_time(job.start_time),
        "endTime": format_time(job.end_time),
        "executionDuration": job.execution_duration,
        "destruction": format_time(job.destruction),
        "parameters": _parameters_json(job.parameters),
        "results": _results_json(job.results),
        "errorSummary": None if job.error_summary is None else {
            "message": job.error_summary.message, "type": job.error_summary.type,
            "hasDetail": job.error_summary.has_detail},
        "jobInfo": None if job.job_info is None else {
            "jobType": job.job_info.job_type, "progress": job.job_info.progress,
            "message": job.job_info.progress_message},
    }


def jobs_to_json(jobs: list[ShortJobDescription]) -> dict[str, Any]:
    return {"version": UWS_VERSION, "jobs": [
        {"id": j.job_id, "href": j.href, "phase": j.phase, "runId": j.run_id,
         "ownerId": j.owner_id, "creationTime": format_time(j.creation_time)} for j in jobs]}


def parameters_to_json(parameters: list[Parameter]) -> dict[str, Any]:
    return {"parameters": _parameters_json(parameters)}


def results_to_json(results: list[ResultReference]) -> dict[str, Any]:
    return {"results": _results_json(results)}
