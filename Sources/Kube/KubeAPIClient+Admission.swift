import FoundationEssentials
import Support

/// The calls the admission webhook's certificate management makes: get,
/// create and replace of one Secret and get and replace of one
/// ValidatingWebhookConfiguration. Objects stay JSON dictionaries so that a
/// replace (PUT, with the object's resourceVersion: a concurrent change is a
/// 409, never lost) keeps every field Postern does not know.
///
/// Threading: blocking, like every client call; controller threads only.
extension KubeAPIClient {
    /// The path of a Secret.
    public static func secretPath(namespace: String, name: String) -> String {
        "/api/v1/namespaces/\(namespace)/secrets/\(name)"
    }

    /// The path of a ValidatingWebhookConfiguration (cluster-scoped).
    public static func validatingWebhookConfigurationPath(name: String) -> String {
        "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/\(name)"
    }

    /// GET `path` as a JSON object; nil when it does not exist (404).
    public func getJSONObject(path: String) throws -> [String: Any]? {
        let response = try send(method: "GET", path: path)
        if response.status == 404 { return nil }
        guard (200..<300).contains(response.status) else { throw KubeAPIClient.statusError(response) }
        return try Self.decodeObject(response.body)
    }

    /// POSTs `object` to `collectionPath` (e.g. `/api/v1/namespaces/NS/secrets`).
    /// A 409 (another replica created it first) is thrown as `KubeAPIError.status`.
    @discardableResult
    public func createJSONObject(collectionPath: String, object: [String: Any]) throws -> [String: Any] {
        let body = try JSONObjects.data(from: object, options: [.sortedKeys])
        let response = try sendExpectingSuccess(method: "POST", path: collectionPath, body: Array(body))
        return try Self.decodeObject(response.body)
    }

    /// PUTs `object` (which carries the resourceVersion it was read at) to `path`.
    @discardableResult
    public func replaceJSONObject(path: String, object: [String: Any]) throws -> [String: Any] {
        let body = try JSONObjects.data(from: object, options: [.sortedKeys])
        let response = try sendExpectingSuccess(method: "PUT", path: path, body: Array(body))
        return try Self.decodeObject(response.body)
    }

    private static func decodeObject(_ body: [UInt8]) throws -> [String: Any] {
        guard let object = try? JSONObjects.object(from: body) as? [String: Any] else {
            throw KubeAPIError.malformed("expected a JSON object from the API server")
        }
        return object
    }
}
