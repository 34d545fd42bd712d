#!/usr/bin/env python3
"""Writes fuzz/corpus-structured: seed inputs for the structured fuzz target
(ORGD_FUZZ_TARGET=structured, Sources/OrgdFuzz/StructuredTarget.swift).

Each seed is one ordinary, valid call (values from the middle of their
ranges), so the fuzzer starts deep in each service and mutates from there;
plus an empty request of every method, as every kind of caller. Run it again
after changing the input layout, the method table or the seeded ids' order.
"""
import os
import re
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = open(os.path.join(ROOT, "Sources/OrgdFuzz/StructuredTarget.swift")).read()
TABLE = SOURCE[SOURCE.index("static let methods"):SOURCE.index("static let inputsPerWorld")]
METHODS = [name.split("/")[1] if not name.startswith("grpc") else "HealthCheck"
           for name in re.findall(r'\("([^"]+)", ', TABLE)]
CALLERS = ["local", "admin", "manager", "agent", "patient", "serviceForPatient", "service", "anonymous"]
# World.seed's fixed id order.
ID = {name: index for index, name in enumerate([
    "orgA", "orgB", "admin", "manager", "agent", "patientUser", "other", "patientA", "patientB",
    "actingService", "dataService", "study", "agency", "scopeA", "scopeACode", "scopeB", "scopeBCode",
    "invitationA", "invitationB", "outboxMessage", "outboxToken", "orgPageToken", "userPageToken", "mailer"])}
# Indexes into FuzzDecoder's Interesting.int64 / .int32 tables.
INT64 = {1: 1, 1000: 8, 1_700_000_000: 23, 1_800_000_000: 22}
INT32 = {1: 1, 7: 4, 100: 8}


def field(number, *value):
    return bytes([number]) + b"".join(value)


def seeded(name):          # FuzzDecoder.string: selector 4 = the id as it is
    return bytes([4, ID[name]])


def text(value):           # selector >= 192: length, then the bytes
    data = value.encode()
    assert len(data) < 64
    return bytes([0xC8, len(data)]) + data


def message(*fields):
    return b"".join(fields) + b"\0"


def repeated(*elements):
    return bytes([len(elements)]) + b"".join(elements)


def int64(value):
    return bytes([INT64[value]])


def int32(value):
    return bytes([INT32[value]])


def enum(raw):
    return bytes([raw])


def timestamp(seconds):
    return message(field(1, int64(seconds)))


def scope_ref(name):
    return message(field(1, seeded(name)))


def answer():
    return message(field(1, text("https://w3id.org/openmhealth")), field(2, seeded("scopeACode")), field(3, b"\1"))


def invitee(email):
    return message(field(1, seeded("orgA")), field(2, text("Dr")), field(3, text("Dana")), field(4, text("Scully")),
                   field(5, text(email)), field(6, text("agent")), field(7, int32(7)))


SEEDS = {
    ("CreateConsentRequest", "manager"): message(
        field(1, seeded("orgA")), field(2, enum(1)), field(3, text("Seed study")), field(4, repeated(scope_ref("scopeA"))),
        field(5, timestamp(1_700_000_000)), field(6, timestamp(1_800_000_000))),
    ("UpdateConsentRequest", "manager"): message(
        field(1, seeded("study")), field(2, int64(1)), field(5, timestamp(1_700_000_000)), field(6, timestamp(1_800_000_000))),
    ("EndConsentRequest", "manager"): message(field(1, seeded("agency"))),
    ("AskPatients", "manager"): message(field(1, seeded("study")), field(2, repeated(seeded("patientA"), seeded("patientB")))),
    ("AnswerConsents", "patient"): message(
        field(1, seeded("patientA")), field(2, repeated(message(field(1, seeded("study")), field(2, repeated(answer())))))),
    ("UpdateConsents", "serviceForPatient"): message(
        field(1, seeded("patientA")), field(2, repeated(message(field(1, seeded("study")), field(2, repeated(answer())))))),
    ("RevokeConsents", "patient"): message(
        field(1, seeded("patientA")), field(2, repeated(message(field(1, seeded("study")), field(2, repeated(answer())))))),
    ("GetPatientConsents", "patient"): message(field(1, seeded("patientA"))),
    ("ListConsentHistory", "patient"): message(field(1, seeded("patientA")), field(2, int32(100))),
    ("CheckAccess", "service"): message(field(1, seeded("agent")), field(2, seeded("patientA")), field(3, scope_ref("scopeA"))),
    ("BatchCheckAccess", "admin"): message(field(1, repeated(
        message(field(1, seeded("agent")), field(2, seeded("patientA")), field(3, scope_ref("scopeA"))),
        message(field(1, seeded("agent")), field(2, seeded("patientB")), field(3, scope_ref("scopeB")))))),
    ("ListAccessiblePatients", "admin"): message(field(1, seeded("agent")), field(2, scope_ref("scopeA")), field(3, int32(100))),
    ("InviteMember", "manager"): invitee("dana@fbi.example"),
    ("BulkInviteMembers", "manager"): message(field(1, seeded("orgA")), field(2, repeated(invitee("a@fbi.example"), invitee("b@fbi.example")))),
    ("ResendInvitation", "manager"): message(field(1, seeded("invitationB"))),
    ("WithdrawInvitation", "manager"): message(field(1, seeded("invitationB"))),
    ("AcceptInvitation", "agent"): message(field(1, seeded("outboxToken"))),
    ("ClaimOutbox", "local"): message(field(1, seeded("mailer")), field(2, int32(7)), field(3, int32(100))),
    ("AckOutbox", "local"): message(field(1, seeded("outboxMessage")), field(2, seeded("mailer")), field(3, b"\1")),
    ("CreateUser", "admin"): message(field(1, text("seed@fuzz.example.org")), field(3, text("Seed")), field(4, text("User")),
                                     field(5, enum(1)), field(6, enum(1))),
    ("CreatePatient", "admin"): message(field(2, text("Seed")), field(3, text("Patient")), field(4, seeded("other"))),
    ("AddStaffMember", "admin"): message(field(1, seeded("orgB")), field(2, seeded("other")), field(3, repeated(enum(1)))),
    ("AddPatientMember", "admin"): message(field(1, seeded("orgB")), field(2, seeded("patientB"))),
    ("GetUser", "manager"): message(field(1, seeded("manager"))),
    ("CreateOrganization", "admin"): message(field(1, text("Seed Practice")), field(2, enum(1)),
                                             field(3, message(field(1, text("https://ods.example")), field(2, text("S1"))))),
    ("ListOrganizations", "admin"): message(field(1, int32(1)), field(2, seeded("orgPageToken"))),
    ("ExportOrganizationFhir", "admin"): message(field(1, seeded("orgA"))),
    ("CreateToken", "local"): message(field(1, seeded("other")), field(3, text("seed")), field(4, int64(1000))),
    ("ListAuditLog", "local"): message(field(1, int32(100))),
}


def main():
    out = os.path.join(ROOT, "fuzz/corpus-structured")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    for (method, caller), body in SEEDS.items():
        flags = CALLERS.index(caller) | 1 << 5          # structured mode, completion entry point
        for suffix, extra in (("", 0), ("-async", 0x08)):
            with open(os.path.join(out, f"{method}-{caller}{suffix}"), "wb") as seed:
                seed.write(bytes([METHODS.index(method), flags | extra]) + body)
    for index, method in enumerate(METHODS):
        for number, caller in enumerate(CALLERS):
            with open(os.path.join(out, f"{method}-{caller}-empty"), "wb") as seed:
                seed.write(bytes([index, number]))                # protobuf mode, no bytes
    print(f"{len(os.listdir(out))} seeds in {out}")


if __name__ == "__main__":
    main()
