/// Client connections the worker tracks (HTTP/1.1 and HTTP/2), for drain.
protocol ClientConnection: AnyObject {
    /// Closes at once if no request is under way (drain).
    func drainIfIdle()
    /// Closes at once, abandoning requests (drain deadline).
    func abort()
}
