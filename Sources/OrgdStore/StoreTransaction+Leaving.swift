import Foundation
import OrgdCore

extension StoreTransaction {
    /// What leaving an organisation means for a patient: the care
    /// relationship carried every ask and answer of the organisation's
    /// requests, so they end with it, in the membership's own transaction.
    ///
    /// Every answer the patient gave to one of the organisation's requests
    /// (consented or not) is deleted and kept in history as "ended" (before:
    /// the answer, after: absent); every scope still unanswered in an ask is
    /// kept as "withdrawn"; the asks themselves are deleted. Nothing is left
    /// for the access check to find, for the consents view to show or for
    /// the patient to answer, and joining again revives nothing: the
    /// organisation must ask again and the patient answer again. History is
    /// never touched: it still shows what was asked and answered, and when.
    func endCareRelationship(organizationID: String, patientID: String, actor: Actor) throws {
        let requestIDs = try fetchAll(
            """
            SELECT a.consent_request_id AS id FROM consent_ask a JOIN consent_request r ON r.id = a.consent_request_id
            WHERE a.patient_id = ? AND r.organization_id = ? ORDER BY r.seq
            """,
            [patientID, organizationID]
        ).map { $0["id"] as String }
        for requestID in requestIDs {
            let answers = Dictionary(uniqueKeysWithValues: try fetchAll(
                "SELECT scope_id, consented FROM consent WHERE patient_id = ? AND consent_request_id = ?", [patientID, requestID]
            ).map { ($0["scope_id"] as String, $0["consented"] as Bool) })
            for scope in try consentRequest(id: requestID).scopes {
                if let answer = answers[scope.id] {
                    try recordHistory(patientID: patientID, requestID: requestID, scopeID: scope.id, action: .ended,
                                      before: answer, after: nil, actor: actor)
                } else {
                    try recordHistory(patientID: patientID, requestID: requestID, scopeID: scope.id, action: .withdrawn,
                                      before: nil, after: nil, actor: actor)
                }
            }
            try execute("DELETE FROM consent WHERE patient_id = ? AND consent_request_id = ?", [patientID, requestID])
            try execute("DELETE FROM consent_ask WHERE patient_id = ? AND consent_request_id = ?", [patientID, requestID])
        }
    }
}
