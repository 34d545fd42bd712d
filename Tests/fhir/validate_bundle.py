"""Validates an orgd FHIR export with a real FHIR R4 library.

Usage: validate_bundle.py BUNDLE.json EXPECTATIONS.json

fhir.resources 6.1.0 holds the FHIR R4 (4.0.1) models: parsing the bundle
validates every resource's structure and types. Then the bundle is checked to
stand on its own (a transaction of PUTs, every entry with a urn:uuid fullUrl
matching its resource, every reference resolving to an entry of the type it
names), and the expectations (what the test put into orgd) are checked
against the resources' content.
"""
import json
import sys

from fhir.resources import FHIRAbstractModel
from fhir.resources.bundle import Bundle

ROLE_SYSTEM = "urn:orgd:fhir:CodeSystem:staff-role"
PRIMARY_EXTENSION = "urn:orgd:fhir:StructureDefinition:primary-organization"


def references(value, path=""):
    """Every Reference.reference in a resource's JSON, with where it is."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield path, item
            else:
                yield from references(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from references(item, f"{path}[{index}]")


def check_stands_alone(raw):
    """The bundle as JSON: urn:uuid fullUrls, PUTs, references that resolve."""
    assert raw["type"] == "transaction", raw["type"]
    by_url = {}
    for index, entry in enumerate(raw["entry"]):
        resource = entry["resource"]
        kind, rid = resource["resourceType"], resource["id"]
        assert entry["fullUrl"] == f"urn:uuid:{rid}", (index, entry["fullUrl"], rid)
        assert entry["request"] == {"method": "PUT", "url": f"{kind}/{rid}"}, (index, entry["request"])
        assert entry["fullUrl"] not in by_url, f"fullUrl {entry['fullUrl']} twice"
        by_url[entry["fullUrl"]] = resource
    count = 0
    for entry in raw["entry"]:
        resource = entry["resource"]
        for path, target in references(resource):
            where = f"{resource['resourceType']}/{resource['id']}{path}"
            assert target.startswith("urn:uuid:"), f"{where}: {target} is not a urn:uuid reference"
            assert target in by_url, f"{where}: {target} resolves to no entry"
            count += 1
    return by_url, count


def resolve(by_url, reference, kind):
    resource = by_url[reference.reference]
    assert resource["resourceType"] == kind, (reference.reference, resource["resourceType"], kind)
    return resource["id"]


def main():
    raw = json.load(open(sys.argv[1]))
    by_url, reference_count = check_stands_alone(raw)
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

    practitioners = sorted(p.id for p in by_type.get("Practitioner", []))
    assert practitioners == sorted(expected["staff"]), practitioners
    roles = {}
    for role in by_type.get("PractitionerRole", []):
        assert resolve(by_url, role.organization, "Organization") == organization.id
        user_id = resolve(by_url, role.practitioner, "Practitioner")
        codes = sorted(c.code for concept in role.code for c in concept.coding if c.system == ROLE_SYSTEM)
        primary = [e.valueBoolean for e in role.extension if e.url == PRIMARY_EXTENSION]
        roles[user_id] = {"roles": codes, "primary": primary == [True]}
    assert roles == expected["staff"], (roles, expected["staff"])

    care_teams = by_type.get("CareTeam", [])
    members = sorted(resolve(by_url, p.member, "Patient") for team in care_teams for p in team.participant)
    assert members == sorted(expected["patients"]), members
    for team in care_teams:
        assert resolve(by_url, team.managingOrganization[0], "Organization") == organization.id

    patients = by_type.get("Patient", [])
    assert sorted(p.id for p in patients) == sorted(expected["patients"]), [p.id for p in patients]
    managed = sorted(
        p.id for p in patients
        if p.managingOrganization is not None and resolve(by_url, p.managingOrganization, "Organization") == organization.id
    )
    assert managed == sorted(expected["managed_patients"]), managed
    unmanaged = [p.id for p in patients if p.id not in managed]
    assert all(p.managingOrganization is None for p in patients if p.id in unmanaged), unmanaged
    print(f"valid FHIR R4 bundle: {len(resources)} resources "
          f"({', '.join(f'{k} {len(v)}' for k, v in sorted(by_type.items()))}), "
          f"{reference_count} references, all resolved")


if __name__ == "__main__":
    main()
