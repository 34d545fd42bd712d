-- One CreateOrganization, statement for statement as orgd runs it on
-- PostgreSQL (captured with log_statement=all): Store.write's SERIALIZABLE
-- transaction, StoreTransaction.createOrganization's insert and read-back,
-- the audit row (appendAudit) and the change feed's revision
-- (recordRevision: the advisory lock that orders commits, then
-- change_revision). The change feed's entry rows come from the same
-- triggers orgd's inserts fire. Seven round trips, like orgd's.
--
-- The id is 36 random digits, two of pgbench's numbers side by side (orgd's
-- are 36-character UUIDs, as the schema's CHECK wants; pgbench's variables
-- hold numbers only); :now is the run's start in microseconds. Run with
-- --max-tries: orgd retries a serialization failure, so does pgbench.
\set a random(100000000000000000, 999999999999999999)
\set b random(100000000000000000, 999999999999999999)
BEGIN ISOLATION LEVEL SERIALIZABLE;
INSERT INTO organization (id, name, type, identifier_system, identifier_value, active, create_time, update_time, version)
VALUES (:a::text || :b::text, 'pgbench org ' || :a::text || :b::text, 'department', NULL, NULL, 1, :now, :now, 1);
SELECT seq, id, name, type, identifier_system, identifier_value, active, create_time, update_time, version FROM organization WHERE id = :a::text || :b::text;
INSERT INTO audit_log (time, actor, acting_for, method, request_json)
VALUES (:now, 'local', '', 'orgd.v1.OrganizationService/CreateOrganization', '{"name":"pgbench org ' || :a::text || :b::text || '","type":"ORGANIZATION_TYPE_DEPARTMENT"}');
SELECT pg_advisory_xact_lock(8030594766467327332);
INSERT INTO change_revision (revision, tx_key, commit_time) VALUES (nextval('change_revision_seq'), txid_current(), :now);
COMMIT;
