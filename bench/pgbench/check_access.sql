-- One CheckAccess, statement for statement as orgd runs it on PostgreSQL
-- (captured with log_statement=all): the read transaction of
-- PostgresBackend.read, ConsentService.decide's scope lookup
-- (StoreTransaction.scope(codingSystem:codingCode:)) and
-- StoreTransaction.checkAccess's query. Four round trips, like orgd's.
--
-- bench/postgres.py repeats this body once per (agent, patient, scope) drawn
-- from the seeded data, putting the ids in where {agent}, {patient},
-- {system} and {code} stand, 8 to a script and 128 scripts; pgbench picks a
-- script per transaction and in it one check with \if on a random number
-- (pgbench's variables hold numbers only). :now is the run's
-- start in microseconds (orgd passes the call's time). The scope's id comes
-- from the lookup's answer, as in orgd.
BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY;
SELECT * FROM scope WHERE coding_system = '{system}' AND coding_code = '{code}' \gset scope_
SELECT r.id, r.organization_id FROM consent c
JOIN consent_request r ON r.id = c.consent_request_id
JOIN organization_staff_member m ON m.organization_id = r.organization_id AND m.user_id = '{agent}' AND m.is_agent = 1
JOIN organization o ON o.id = r.organization_id AND o.active = 1
JOIN "user" u ON u.id = m.user_id AND u.status <> 'disabled'
WHERE c.patient_id = '{patient}' AND c.scope_id = :scope_id AND c.consented = 1
  AND (r.start_time IS NULL OR r.start_time <= :now) AND (r.end_time IS NULL OR r.end_time > :now)
LIMIT 1;
COMMIT;
