"""JUnit XML: one test case per artifact × check (parity per batch size, latency per batch size).

Each case takes its failures by their fields: parity from the batch's own ``failures``, the
parity inputs' failures (``kind == "inputs"``) in a case of their own, latency gates by
``Failure.batch_size``. An inconclusive measurement without a gate is a skipped case. The suite's
``<properties>`` carry the run's two verdicts (``parity_verdict``, ``latency_verdict``: status,
whether it fails the run, and why) and the ``headline`` that says both.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from converters.compare import Failure
from validation.report._notes import inputs_line, timing_line
from validation.result import ValidationReport


def junit_xml(report: ValidationReport) -> str:
    """The report as a JUnit ``<testsuites>`` document (failures carry the numbers).

    Args:
        report: the validation report.
    """
    suites = ET.Element("testsuites", name="rehead validate")
    suite = ET.SubElement(suites, "testsuite", name=f"rehead.validate.{report.model.get('arch', 'model')}")
    counts = {"tests": 0, "failures": 0, "skipped": 0}
    properties = ET.SubElement(suite, "properties")
    for verdict in report.verdicts:
        key = f"{verdict.check}_verdict"
        ET.SubElement(properties, "property", name=key, value=verdict.status)
        ET.SubElement(properties, "property", name=f"{key}_blocking", value=str(verdict.blocking).lower())
        ET.SubElement(properties, "property", name=f"{key}_reason", value=verdict.reason)
    ET.SubElement(properties, "property", name="headline", value=report.headline)
    ET.SubElement(properties, "property", name="latency_timers", value=timing_line(report))
    ET.SubElement(properties, "property", name="inputs_warning", value=inputs_line(report))

    def case(
        classname: str, name: str, seconds: float, failures: list[Failure], skipped: str | None = None
    ) -> None:
        counts["tests"] += 1
        element = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.6f}")
        if failures:
            counts["failures"] += 1
            first = failures[0]
            kind = "GateFailed" if first.conclusive else "GateInconclusive"
            failure = ET.SubElement(element, "failure", message=first.message[:500], type=kind)
            failure.text = "\n".join(f.message for f in failures)
        elif skipped:
            counts["skipped"] += 1
            ET.SubElement(element, "skipped", message=skipped)

    for artifact in report.artifacts:
        classname = f"rehead.{artifact.name}"
        parity = artifact.parity
        if parity is not None:
            for batch in parity.batches:
                case(classname, f"parity[batch={batch.batch_size}]", 0.0, batch.failures)
            inputs = [f for f in parity.failures if f.kind == "inputs"]
            if inputs:
                case(classname, "parity[inputs]", 0.0, inputs)
        for bs, stats in artifact.latency.items():
            gate = [f for f in artifact.gate_failures if f.batch_size == bs]
            skipped = None if stats.conclusive else f"inconclusive: {artifact.latency_reason(bs)}"
            case(classname, f"latency[batch={bs}]", stats.duration_s, gate, skipped)
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
