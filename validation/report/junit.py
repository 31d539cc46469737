"""JUnit XML: one test case per artifact × check (parity per batch size, latency per batch size)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from validation.result import ValidationReport


def junit_xml(report: ValidationReport) -> str:
    """The report as a JUnit ``<testsuites>`` document (failures carry the numbers)."""
    suites = ET.Element("testsuites", name="rehead validate")
    suite = ET.SubElement(suites, "testsuite", name=f"rehead.validate.{report.model.get('arch', 'model')}")
    counts = {"tests": 0, "failures": 0, "skipped": 0}

    def case(
        classname: str, name: str, seconds: float, failures: list[str], skipped: str | None = None
    ) -> None:
        counts["tests"] += 1
        element = ET.SubElement(suite, "testcase", classname=classname, name=name, time=f"{seconds:.6f}")
        if failures:
            counts["failures"] += 1
            failure = ET.SubElement(element, "failure", message=failures[0][:500], type="GateFailed")
            failure.text = "\n".join(failures)
        elif skipped:
            counts["skipped"] += 1
            ET.SubElement(element, "skipped", message=skipped)

    for artifact in report.artifacts:
        classname = f"rehead.{artifact.name}"
        if artifact.parity is not None:
            for batch in artifact.parity.batches:
                case(classname, f"parity[batch={batch.batch_size}]", 0.0, batch.failures)
            extra = [
                f
                for f in artifact.parity.failures
                if not any(f in b.failures for b in artifact.parity.batches)
            ]
            if extra:
                case(classname, "parity[inputs]", 0.0, extra)
        for bs, stats in artifact.latency.items():
            gate = [f for f in artifact.gate_failures if f"batch {bs}" in f]
            skipped = None if stats.conclusive else f"inconclusive: {stats.reason}"
            case(classname, f"latency[batch={bs}]", stats.duration_s, gate, skipped)
    for key, value in counts.items():
        suite.set(key, str(value))
    suite.set("errors", "0")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
