import FoundationEssentials

extension KubeAPIClient {
    /// Reads one ConfigMap (`GET /api/v1/namespaces/NS/configmaps/NAME`), for
    /// the settings that must be known before the proxy starts (listeners,
    /// workers). nil when it does not exist (404).
    public func configMap(namespace: String, name: String) throws -> ConfigMap? {
        let path = WatchedKind.configMap.collectionPath(namespace: namespace) + "/" + name
        let response = try send(method: "GET", path: path)
        if response.status == 404 { return nil }
        guard response.status == 200 else { throw KubeAPIClient.statusError(response) }
        do {
            return try JSONDecoder().decode(ConfigMap.self, from: Data(response.body))
        } catch {
            throw KubeAPIError.malformed("ConfigMap \(namespace)/\(name): \(DecodingErrorDescription.describe(error))")
        }
    }
}
