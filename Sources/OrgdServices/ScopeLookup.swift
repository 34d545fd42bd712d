import OrgdStore

/// Where a scope reference is looked up: a transaction, or the access index.
protocol ScopeLookup {
    func scope(id: String) throws -> ScopeRecord?
    func scope(codingSystem: String, codingCode: String) throws -> ScopeRecord?
}

extension StoreTransaction: ScopeLookup {}
extension AccessIndexView: ScopeLookup {}
