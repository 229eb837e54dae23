"""Strict XSD validation of TCX and GPX output against the vendored official schemas.

Validating against TrainingCenterDatabasev2.xsd (or gpx.xsd) alone checks nothing inside
``<Extensions>``: those are ``<xsd:any processContents="lax">``, lax means "check only if the
element's schema is loaded", and lxml does not follow ``xsi:schemaLocation``. So each validator
is built from a wrapper schema (no target namespace) that imports the main schema and every
extension schema by relative path, and a resolver serves those files with ``lax`` turned into
``strict`` (in memory; the vendored files stay untouched) so an element no loaded schema
declares, such as a misspelled ``<ns3:TPx>``, is rejected too.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlparse

from lxml import etree

SCHEMAS = Path(__file__).parent / "schemas"

_TCX_IMPORTS = {
    "http://www.garmin.com/xmlschemas/TrainingCenterDatabase/v2": "TrainingCenterDatabasev2.xsd",
    "http://www.garmin.com/xmlschemas/ActivityExtension/v2": "ActivityExtensionv2.xsd",
}
_GPX_IMPORTS = {
    "http://www.topografix.com/GPX/1/1": "gpx.xsd",
    "http://www.garmin.com/xmlschemas/GpxExtensions/v3": "GpxExtensionsv3.xsd",
    "http://www.garmin.com/xmlschemas/TrackPointExtension/v1": "TrackPointExtensionv1.xsd",
    "http://www.garmin.com/xmlschemas/TrackPointExtension/v2": "TrackPointExtensionv2.xsd",
    "http://www.garmin.com/xmlschemas/PowerExtension/v1": "PowerExtensionv1.xsd",
}


class _StrictResolver(etree.Resolver):
    """Serves the vendored schemas with every ``processContents="lax"`` made strict."""

    # lxml passes a context argument that lxml-stubs leaves out
    def resolve(self, system_url: str, public_id: str, context: object) -> object:  # type: ignore[override]
        path = Path(unquote(urlparse(system_url).path) if "://" in system_url else system_url)
        if path.parent.resolve() != SCHEMAS.resolve() or path.suffix != ".xsd":
            raise AssertionError(f"schema import outside the vendored folder: {system_url}")
        data = path.read_bytes().replace(b'processContents="lax"', b'processContents="strict"')
        return self.resolve_string(data, context, base_url=system_url)


def _build(imports: dict[str, str]) -> etree.XMLSchema:
    lines = ['<xsd:schema xmlns:xsd="http://www.w3.org/2001/XMLSchema">']
    lines += [f'<xsd:import namespace="{ns}" schemaLocation="{f}"/>' for ns, f in imports.items()]
    lines.append("</xsd:schema>")
    parser = etree.XMLParser(no_network=True)
    parser.resolvers.add(_StrictResolver())
    # base_url inside the schemas folder so the relative schemaLocations resolve there
    wrapper = etree.fromstring(
        "\n".join(lines).encode(), parser, base_url=str(SCHEMAS / "_wrapper.xsd")
    )
    return etree.XMLSchema(wrapper)


@cache
def tcx_schema() -> etree.XMLSchema:
    """TrainingCenterDatabase v2 + ActivityExtension v2, strict (built once: it is slow)."""
    return _build(_TCX_IMPORTS)


@cache
def gpx_schema() -> etree.XMLSchema:
    """GPX 1.1 + Garmin GpxExtensions v3, TrackPointExtension v1/v2, PowerExtension v1."""
    return _build(_GPX_IMPORTS)


def _validate(schema: etree.XMLSchema, data: bytes, what: str) -> None:
    try:
        doc = etree.fromstring(data, etree.XMLParser(no_network=True, resolve_entities=False))
    except etree.XMLSyntaxError as exc:
        raise AssertionError(f"{what} is not well-formed XML: {exc}") from exc
    if not schema.validate(doc):
        raise AssertionError(f"{what} fails its schema:\n{schema.error_log}")


def validate_tcx(data: bytes) -> None:
    """Raise AssertionError (with lxml's error log) unless ``data`` is strictly valid TCX."""
    _validate(tcx_schema(), data, "TCX")


def validate_gpx(data: bytes) -> None:
    """Raise AssertionError (with lxml's error log) unless ``data`` is strictly valid GPX 1.1."""
    _validate(gpx_schema(), data, "GPX")
