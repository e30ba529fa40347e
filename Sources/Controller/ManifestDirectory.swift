import FoundationEssentials
import Glibc
import Kube
import Support
import Translate

/// What identifies a version of a file without reading it.
public struct FileStamp: Sendable, Hashable {
    /// The file after following symlinks (ConfigMap volumes swap a `..data` link).
    public var resolvedPath: String
    public var modificationTime: Double
    public var size: UInt64
    public var inode: UInt64
}

/// Everything loaded from a manifest directory at one moment.
public struct ManifestLoad: Sendable {
    /// Objects of supported kinds, each identity once (the first file in
    /// sorted order wins), in file then document order.
    public var objects: [KubeObject]
    /// The file each object came from.
    public var files: [ObjectKey: String]
    /// Problems with files and documents, sorted.
    public var diagnostics: [Diagnostic]
    /// Files that could not be used this time (their last good objects were kept).
    public var failedFiles: [String]

    /// The objects as Translate's input.
    public var snapshot: ObjectSnapshot { ObjectSnapshot(objects: objects) }
}

/// Loads every `*.yaml`/`*.yml` file of one directory (not recursive; hidden
/// files skipped), remembering the last good content of each file.
///
/// A file that cannot be read or parsed keeps serving the objects last loaded
/// from it, with an `InvalidManifest` diagnostic; a deleted file's objects go
/// away. Unchanged files (same resolved path, mtime, size and inode) are not
/// read again. Not thread-safe: use from one thread (the controller's).
public final class ManifestDirectory {
    /// The directory.
    public let path: String
    /// Files larger than this are rejected (a manifest directory holds configuration, not data).
    public let maximumFileSize: UInt64

    private struct CachedFile {
        var stamp: FileStamp
        var objects: [KubeObject]
        var diagnostics: [Diagnostic]
        var failed: Bool
    }

    private var cache: [String: CachedFile] = [:]
    private var lastListing: [String]? = nil

    /// The stamps of the files as the last `load()` saw them (taken before
    /// reading, so a write during a load shows up as a change afterwards);
    /// nil before the first load or when the directory could not be listed.
    /// Compare with `fingerprint()` to learn whether a reload is needed.
    public private(set) var loadedFingerprint: [String: FileStamp]? = nil

    /// Creates a loader for `path`; nothing is read until `load()`.
    public init(path: String, maximumFileSize: UInt64 = 16 << 20) {
        self.path = path
        self.maximumFileSize = maximumFileSize
    }

    /// Stamps of the manifest files now in the directory (file name → stamp);
    /// nil when the directory cannot be listed. Cheap: no file is read.
    public func fingerprint() -> [String: FileStamp]? {
        guard let names = listManifestFiles() else { return nil }
        var result: [String: FileStamp] = [:]
        for name in names {
            if let stamp = stamp(of: name) { result[name] = stamp }
        }
        return result
    }

    /// Why `path` cannot be listed, for the diagnostic: out of file
    /// descriptors (the process, EMFILE, or the system, ENFILE) is told apart
    /// from a missing or unreadable directory.
    static func listingFailureReason(_ path: String) -> String {
        guard let directory = opendir(path) else {
            let error = errno
            switch error {
            case EMFILE: return "out of file descriptors: EMFILE, the process limit (ulimit -n) is reached"
            case ENFILE: return "out of file descriptors: ENFILE, the system-wide limit is reached"
            default: return String(cString: strerror(error))
            }
        }
        closedir(directory)
        return "listing failed"
    }

    /// Loads the directory, reading only files that changed since the last load.
    public func load() -> ManifestLoad {
        var directoryDiagnostics: [Diagnostic] = []
        var names: [String]
        if let listed = listManifestFiles() {
            names = listed
            lastListing = listed
        } else {
            // Keep serving what was there (a remount or a typo must not drop every route).
            names = lastListing ?? []
            directoryDiagnostics.append(Diagnostic(
                severity: .error, kind: "", namespace: "", name: "", file: path, reason: "InvalidManifest",
                message: "cannot list manifest directory (\(Self.listingFailureReason(path))); keeping \(names.count) files loaded before"))
        }
        var failed: [String] = []
        var seen = Set<String>()
        var stamps: [String: FileStamp] = [:]
        for name in names {
            seen.insert(name)
            refresh(name)
            if let stamp = cache[name]?.stamp { stamps[name] = stamp }
            if cache[name]?.failed == true { failed.append(displayPath(name)) }
        }
        loadedFingerprint = directoryDiagnostics.isEmpty ? stamps : nil
        if !directoryDiagnostics.isEmpty {
            failed.append(path)
        } else {
            for name in cache.keys where !seen.contains(name) { cache[name] = nil }
        }

        var objects: [KubeObject] = []
        var files: [ObjectKey: String] = [:]
        var diagnostics = directoryDiagnostics
        for name in names {
            guard let entry = cache[name] else { continue }
            diagnostics += entry.diagnostics
            let file = displayPath(name)
            for object in entry.objects {
                if case .unsupported = object { continue }
                let key = object.key
                if let winner = files[key] {
                    diagnostics.append(Diagnostic(.error, key, reason: "DuplicateObject",
                        message: "also defined in \(winner), which comes first; this copy is ignored", file: file))
                    continue
                }
                files[key] = file
                objects.append(object)
            }
        }
        return ManifestLoad(objects: objects, files: files, diagnostics: diagnostics.sorted(), failedFiles: failed)
    }

    private func displayPath(_ name: String) -> String {
        TextEncoding.path(path, name)
    }

    /// Sorted names of non-hidden `*.yaml`/`*.yml` entries.
    private func listManifestFiles() -> [String]? {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: path) else { return nil }
        return names.filter { name in
            !name.hasPrefix(".") && (name.hasSuffix(".yaml") || name.hasSuffix(".yml"))
        }.sorted()
    }

    private func stamp(of name: String) -> FileStamp? {
        let resolved = URL(fileURLWithPath: displayPath(name)).resolvingSymlinksInPath().path
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: resolved),
              attributes[.type] as? FileAttributeType == .typeRegular
        else { return nil }
        let modified = (attributes[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
        let size = (attributes[.size] as? any BinaryInteger).map { UInt64($0) } ?? 0
        let inode = (attributes[.systemFileNumber] as? any BinaryInteger).map { UInt64($0) } ?? 0
        return FileStamp(resolvedPath: resolved, modificationTime: modified, size: size, inode: inode)
    }

    /// Re-reads `name` when its stamp changed; on failure keeps the last good objects.
    private func refresh(_ name: String) {
        let file = displayPath(name)
        guard let stamp = stamp(of: name) else {
            // Vanished between listing and stat, or not a regular file: treat as absent.
            cache[name] = nil
            return
        }
        if let cached = cache[name], cached.stamp == stamp { return }
        let kept = cache[name]?.objects ?? []
        func fail(_ message: String) {
            let note = kept.isEmpty ? "" : "; keeping the \(kept.count) objects last loaded from it"
            cache[name] = CachedFile(
                stamp: stamp, objects: kept,
                diagnostics: [Diagnostic(
                    severity: .error, kind: "", namespace: "", name: "", file: file,
                    reason: "InvalidManifest", message: message + note)],
                failed: true)
        }
        guard stamp.size <= maximumFileSize else {
            fail("file is \(stamp.size) bytes, more than the \(maximumFileSize) allowed")
            return
        }
        guard let data = FileManager.default.contents(atPath: file) else {
            fail("cannot read file")
            return
        }
        guard let text = String(data: data, encoding: .utf8) else {
            fail("file is not UTF-8")
            return
        }
        switch ManifestParser.parse(yaml: text, file: file) {
        case let .success(parsed):
            cache[name] = CachedFile(stamp: stamp, objects: parsed.objects, diagnostics: parsed.diagnostics, failed: false)
        case let .failure(error):
            fail(error.diagnostic.message)
        }
    }
}
