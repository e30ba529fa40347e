/// Size limits applied while parsing a message head.
///
/// Limits are checked as bytes arrive, so an oversized head fails as soon as
/// the limit is crossed, not only when its terminating empty line shows up.
public struct HTTP1Limits: Sendable {
    /// Longest request-target accepted; one byte more answers 414 (URI Too Long).
    public var maxRequestTargetLength: Int
    /// Largest head accepted, counted from the first byte (leading empty lines
    /// included) through the final CRLFCRLF; more answers 431.
    public var maxHeaderSectionBytes: Int
    /// Most header fields accepted in one head; more answers 431.
    public var maxHeaderCount: Int

    /// Creates limits; the defaults match common proxies (nginx, Envoy).
    public init(maxRequestTargetLength: Int = 8192, maxHeaderSectionBytes: Int = 32 * 1024, maxHeaderCount: Int = 100) {
        self.maxRequestTargetLength = maxRequestTargetLength
        self.maxHeaderSectionBytes = maxHeaderSectionBytes
        self.maxHeaderCount = maxHeaderCount
    }
}
