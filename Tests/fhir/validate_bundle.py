"""Validates an orgd FHIR export with a real FHIR R4 library.

Usage: validate_bundle.py BUNDLE.json EXPECTATIONS.json

fhir.resources 6.1.0 holds the FHIR R4 (4.0.1) models: parsing the bundle
validates every resource's structure and types. Then the expectations (what
the test put into orgd) are checked against the resources' content.
"""
import json
import sys

from fhir.resources import FHIRAbstractModel
from fhir.resources.bundle import Bundle

ROLE_SYSTEM = "urn:orgd:fhir:CodeSystem:staff-role"
PRIMARY_EXTENSION = "urn:orgd:fhir:StructureDefinition:primary-organization"


def main():
    bundle = Bundle.parse_file(sys.argv[1])
    expected = json.load(open(sys.argv[2]))
    resources = [entry.resource for entry in bundle.entry]
    for resource in resources:
        assert isinstance(resource, FHIRAbstractModel), resource
    by_type = {}
    for resource in resources:
        by_type.setdefault(resource.resource_type, []).append(resource)

    (organization,) = by_type["Organization"]
    assert organization.id == expected["organization_id"], organization.id
    assert organization.name == expected["name"]
    assert organization.active is expected["active"]
    assert organization.identifier[0].system == expected["identifier_system"]
    assert organization.identifier[0].value == expected["identifier_value"]

    roles = {}
    for role in by_type.get("PractitionerRole", []):
        assert role.organization.reference == f"Organization/{organization.id}"
        user_id = role.practitioner.reference.split("/", 1)[1]
        codes = sorted(c.code for concept in role.code for c in concept.coding if c.system == ROLE_SYSTEM)
        primary = [e.valueBoolean for e in role.extension if e.url == PRIMARY_EXTENSION]
        roles[user_id] = {"roles": codes, "primary": primary == [True]}
    assert roles == expected["staff"], (roles, expected["staff"])

    care_teams = by_type.get("CareTeam", [])
    members = sorted(p.member.reference.split("/", 1)[1] for team in care_teams for p in team.participant)
    assert members == sorted(expected["patients"]), members
    for team in care_teams:
        assert team.managingOrganization[0].reference == f"Organization/{organization.id}"

    managed = sorted(
        p.id for p in by_type.get("Patient", []) if p.managingOrganization.reference == f"Organization/{organization.id}"
    )
    assert managed == sorted(expected["managed_patients"]), managed
    print(f"valid FHIR R4 bundle: {len(resources)} resources "
          f"({', '.join(f'{k} {len(v)}' for k, v in sorted(by_type.items()))})")


if __name__ == "__main__":
    main()
